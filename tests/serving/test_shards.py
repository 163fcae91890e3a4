"""Serving from shards: a table larger than the process's budget is read through memory-mapped row shards with
the process's resident memory under budget (measured in a fresh process), and a catalog split across FAISS
index shards answers as the unsharded index does (recall@100 against exact search)."""

from __future__ import annotations

import json
import subprocess
import sys

import faiss
import numpy as np
import pytest

from serving.shards import ShardedTable, rows_per_shard, sharded_index, write_row_shards
from tests.celery_worker import REPO

# Run in a fresh interpreter, so that only this lookup's memory is in its RSS.
_LOOKUPS = """
import json, sys
import numpy as np, psutil
from serving.shards import ShardedTable
folder, budget, whole = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "whole"
process = psutil.Process()
baseline = process.memory_info().rss
rng = np.random.default_rng(1)
peak = 0
if whole:  # the control: one map over every row, as a process without shards would hold the table
    table = np.load(folder + "/rows-00000.npy", mmap_mode="r")
    for _ in range(40):
        np.asarray(table[rng.integers(0, len(table), 4096)]).sum()
        peak = max(peak, process.memory_info().rss - baseline)
    print(json.dumps({"peak": peak}))
    sys.exit()
table = ShardedTable(folder, budget)
for _ in range(200):
    table.take(rng.integers(0, table.shape[0], 4096)).sum()
    peak = max(peak, process.memory_info().rss - baseline)
print(json.dumps({"peak": peak, "maps_opened": table.maps_opened, "max_mapped": table.max_mapped}))
"""


def _peak(folder, budget: int, whole: bool = False) -> dict:
    done = subprocess.run([sys.executable, "-c", _LOOKUPS, str(folder), str(budget), "whole" if whole else "shards"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_row_shards_return_the_rows_asked_for(tmp_path):
    matrix = np.random.default_rng(0).standard_normal((1_000, 8)).astype(np.float32)
    write_row_shards(matrix, tmp_path, rows_per_file=64)
    table = ShardedTable(tmp_path, budget_bytes=64 * 8 * 4 * 6)  # room for three mapped shards
    rows = np.array([999, 0, 64, 63, 500, 500, 128])
    assert np.array_equal(table.take(rows), matrix[rows])
    table.take(np.arange(1_000))
    assert len(table.mapped_shards()) <= table.max_mapped == 3
    with pytest.raises(IndexError):
        table.take(np.array([1_000]))


@pytest.mark.slow
def test_a_table_larger_than_the_budget_is_served_under_it(tmp_path):
    budget = 48 << 20
    dim = 64
    matrix = np.random.default_rng(0).standard_normal((500_000, dim)).astype(np.float32)  # 128 MB
    assert matrix.nbytes > 2 * budget
    sharded, whole = tmp_path / "sharded", tmp_path / "whole"
    write_row_shards(matrix, sharded, rows_per_shard(dim, budget))
    write_row_shards(matrix, whole, len(matrix))
    del matrix
    measured = _peak(sharded, budget)
    assert measured["peak"] < budget, measured
    assert measured["maps_opened"] > measured["max_mapped"], "shards were mapped and unmapped as lookups moved"
    # The control: the same lookups over one map of the whole table go over the budget.
    assert _peak(whole, budget, whole=True)["peak"] > budget


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((256, dim)).astype(np.float32)
    x = centres[rng.integers(0, 256, n)] + 0.15 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_index_shards_answer_as_the_unsharded_index():
    catalog = _clustered(40_200, 32, 0)  # queries drawn around the same centres as the items
    items, queries = catalog[:40_000], catalog[40_000:]
    exact = faiss.IndexFlatIP(32)
    exact.add(items)
    _, truth = exact.search(queries, 100)

    def flat(part: np.ndarray) -> faiss.Index:
        index = faiss.IndexFlatIP(part.shape[1])
        index.add(part)
        return index

    _, got = sharded_index(np.array_split(items, 3), flat).search(queries, 100)
    assert np.array_equal(got, truth)  # exact shards: the same items in the same order

    def ivf(part: np.ndarray) -> faiss.Index:
        quantizer = faiss.IndexFlatIP(part.shape[1])
        index = faiss.IndexIVFFlat(quantizer, part.shape[1], 128, faiss.METRIC_INNER_PRODUCT)
        index.cp.spherical = True
        index.train(part)
        index.add(part)
        index.nprobe = 6  # under 5% of the lists of each shard
        return index

    _, approx = sharded_index(np.array_split(items, 2), ivf).search(queries, 100)
    recall = np.mean([len(set(a) & set(t)) / 100 for a, t in zip(approx, truth, strict=True)])
    assert recall >= 0.99, recall
