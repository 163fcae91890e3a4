"""FAISS indexes over embeddings the project itself trained (never random vectors)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from serving import index as item_index
from tests.training.conftest import make_tenant
from training.trainers.two_tower import train_two_tower  # tests may train; serving/ never imports this


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    events, items = make_tenant(n_customers=120, n_items=600, events_per_customer=20, seed=1)
    retrieval = train_two_tower(events, items, dim=16, epochs=2, batch_size=512, seed=0)
    queries = retrieval.embed_known_customers(events, np.arange(events.n_customers))
    return retrieval.item_embeddings, queries


def _top(index, queries, k=10):
    return item_index.search(index, queries, k)[1]


def test_the_catalog_size_picks_the_index_type():
    assert item_index.choose_params(1_000, 16)["kind"] == "flat"
    ivf = item_index.choose_params(1_000_000, 64)
    assert ivf["kind"] == "ivf_flat" and ivf["nlist"] == 4000
    # The starting nprobe (before tuning on the shop's queries) scans DEFAULT_PROBE_FRACTION of the lists,
    # inside the 5% budget: 180 of 4,000.
    assert ivf["nprobe"] == 180 and ivf["nprobe"] <= item_index.MAX_PROBE_FRACTION * ivf["nlist"]
    shop = item_index.choose_params(100_000, 64)
    assert (shop["nlist"], shop["nprobe"]) == (1265, 57)


def test_ivf_finds_the_exact_top10(trained):
    embeddings, queries = trained
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
    exact, exact_params = item_index.build_index(embeddings)
    ivf, params = item_index.build_index(embeddings, exact_max_items=100)
    assert (exact_params["kind"], params["kind"]) == ("flat", "ivf_flat")
    assert params["nlist"] == round(4 * np.sqrt(600))

    exact_top = _top(exact, queries)

    def recall(nprobe: int) -> float:
        item_index.set_search_params(ivf, {**params, "nprobe": nprobe})
        return float(np.mean([len(set(a) & set(b)) for a, b in zip(_top(ivf, queries), exact_top, strict=True)])) / 10

    # Scanning every list IVF is exact; recall grows with the lists scanned (the probe budget that
    # holds recall at 0.99 on a 1M catalog is the benchmark's to measure, not this tiny test's).
    curve = [recall(n) for n in (1, params["nlist"] // 4, params["nlist"] // 2, params["nlist"])]
    assert curve[-1] == 1.0
    assert curve == sorted(curve) and curve[0] < 1.0
    assert curve[2] >= 0.95


def test_the_stored_index_loads_memory_mapped_with_its_parameters(trained, tmp_path):
    embeddings, queries = trained
    ivf, params = item_index.build_index(embeddings, exact_max_items=100)
    item_index.write_index(ivf, params, tmp_path)

    loaded, loaded_params = item_index.load_index(tmp_path)

    assert loaded_params == params == json.loads((tmp_path / item_index.PARAMS_FILE).read_text())
    assert loaded.ntotal == len(embeddings)
    assert np.array_equal(_top(loaded, queries), _top(ivf, queries))
    # Mapped lists start no prefetch threads per search (seven times the search's own cost at 1M).
    lists = item_index.faiss.downcast_InvertedLists(item_index.faiss.extract_index_ivf(loaded).invlists)
    assert type(lists).__name__ == "OnDiskInvertedLists" and lists.prefetch_nthread == 0


def test_a_missing_index_is_built_on_first_load(trained, tmp_path):
    embeddings, queries = trained
    assert not (tmp_path / item_index.INDEX_FILE).exists()
    index, params = item_index.ensure_index(tmp_path, embeddings)
    assert params["kind"] == "flat" and (tmp_path / item_index.INDEX_FILE).exists()
    exact, _ = item_index.build_index(embeddings)
    assert np.array_equal(_top(index, queries), _top(exact, queries))


def test_tuning_picks_the_smallest_nprobe_that_reaches_the_recall(trained):
    embeddings, queries = trained
    ivf, params = item_index.build_index(embeddings, exact_max_items=100)
    exact = item_index.build_index(embeddings)[0]

    def recall(nprobe: int) -> float:
        item_index.set_search_params(ivf, {**params, "nprobe": nprobe})
        found, truth = _top(ivf, queries, 50), _top(exact, queries, 50)
        return float(np.mean([len(set(a) & set(b)) for a, b in zip(found, truth, strict=True)])) / 50

    tuned = item_index.tune_nprobe(ivf, embeddings, queries, target=0.9, k=50, max_probe_fraction=1.0)
    ladder = [p for p in item_index._PROBE_LADDER if p < params["nlist"]]
    assert tuned["tuning"]["reached"] and tuned["tuning"]["recall"] >= 0.9
    assert recall(tuned["nprobe"]) == pytest.approx(tuned["tuning"]["recall"], abs=1e-4)
    smaller = [p for p in ladder if p < tuned["nprobe"]]
    assert smaller and recall(smaller[-1]) < 0.9  # the step below would not do
    assert 0 < tuned["tuning"]["scanned"] < 1


def test_tuning_stays_within_the_scan_budget(trained):
    embeddings, queries = trained
    ivf, params = item_index.build_index(embeddings, exact_max_items=100)
    tuned = item_index.tune_nprobe(ivf, embeddings, queries, target=1.01)  # unreachable
    assert tuned["nprobe"] == max(1, int(params["nlist"] * item_index.MAX_PROBE_FRACTION))
    assert not tuned["tuning"]["reached"]
    assert faiss_nprobe(ivf) == params["nprobe"]  # the index keeps its own setting


def faiss_nprobe(index) -> int:
    return item_index.faiss.extract_index_ivf(index).nprobe
