"""The index build job: a trained version gets its FAISS index (and the parameters recorded on the version)
from the `serving.tasks.build_index` task before it is activated; serving loads that file memory-mapped."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from serving import index as item_index
from serving import prepare, registry_cache
from tests.factories import TenantFactory
from tests.serving.trained import TINY, forget_served_state, load_shop, train_active_version
from training.jobs import run_training
from training.registry import lifecycle, storage
from training.registry.models import ModelVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(all_tenants, settings, tmp_path):
    settings.RECSVC_ARTIFACT_DIR = tmp_path
    tenant = TenantFactory()
    load_shop(tenant)
    yield tenant
    forget_served_state()


def _folder(version: ModelVersion) -> Path:
    return storage.local_path(version.artifact_uri)


def _mapped_files() -> set[str]:
    return {line.split(maxsplit=5)[-1] for line in Path("/proc/self/maps").read_text().splitlines()
            if len(line.split()) == 6}


def test_a_trained_version_is_indexed_before_it_is_activated(shop):
    version = train_active_version(shop)

    folder = _folder(version)
    assert (folder / item_index.INDEX_FILE).exists()
    stored = item_index.stored_params(folder)
    assert stored["kind"] == "flat" and stored["n_items"] == version.n_items
    assert version.metrics["index"] == stored  # recorded with the version
    assert version.status == ModelVersion.Status.ACTIVE


def test_the_served_model_maps_the_stored_index_without_rebuilding_it(shop):
    version = train_active_version(shop)
    path = _folder(version) / item_index.INDEX_FILE
    written = path.stat().st_mtime_ns

    model = registry_cache.served_model(shop.pk)

    assert model.version_id == version.pk and model.index.ntotal == version.n_items
    assert model.index_params == version.metrics["index"]
    assert str(path) in _mapped_files()  # memory-mapped, not read into the heap
    assert path.stat().st_mtime_ns == written


def test_a_large_catalog_gets_an_ivf_index_tuned_on_its_customers(shop):
    # The tiny shop's 300 products count as large, and its lists are too few for a 5% budget.
    large = item_index.IndexPolicy(exact_max_items=100, max_probe_fraction=1.0)
    trained = run_training(ModelVersion.objects.create(tenant=shop, hyperparameters=TINY), auto_activate=False)
    (_folder(trained) / item_index.INDEX_FILE).unlink()  # its job indexed it under the default policy (exact)

    assert prepare.prepare_version(shop.pk, trained.pk, activate=True, policy=large) == "activated"

    version = lifecycle.active_version(shop.pk)
    assert version.pk == trained.pk
    params = version.metrics["index"]
    assert params["kind"] == "ivf_flat" and params["n_items"] == version.n_items
    expected = item_index.choose_params(params["n_items"], params["dim"], exact_max_items=large.exact_max_items)
    assert params["nlist"] == expected["nlist"]  # from the catalog size
    tuning = params["tuning"]  # nprobe from the shop's own customers' queries
    customers = prepare.recently_active_customers(shop.pk, prepare.TUNING_QUERIES)
    assert tuning["queries"] == len(customers) >= 50
    assert tuning["reached"] and tuning["recall"] >= item_index.TUNING_RECALL and tuning["k"] == 100
    model = registry_cache.served_model(shop.pk)
    assert model.index_params == params
    assert item_index.faiss.extract_index_ivf(model.index).nprobe == params["nprobe"]
    # The recorded nprobe is the one tuning picks on these customers' queries over the served index.
    queries = prepare.customer_queries(shop.pk, model.retrieval, model.product_pks, model.customer_pks, customers)
    tuned = item_index.tune_nprobe(model.index, model.retrieval.item_embeddings, queries,
                                   max_probe_fraction=large.max_probe_fraction)
    assert tuned["nprobe"] == params["nprobe"]


def test_a_version_that_cannot_be_indexed_stays_ready_and_never_serves(shop):
    version = run_training(ModelVersion.objects.create(tenant=shop, hyperparameters=TINY), auto_activate=False)
    assert version.status == ModelVersion.Status.READY and "index" in version.metrics
    assert version.status_reason == "indexed, ready to activate"
    (_folder(version) / item_index.INDEX_FILE).unlink()
    (_folder(version) / "retrieval" / "item_embeddings.npy").unlink()  # its artifacts are broken

    assert prepare.prepare_version(shop.pk, version.pk, activate=True) == "failed"

    version.refresh_from_db()
    assert version.status == ModelVersion.Status.READY
    assert version.status_reason.startswith("not activated: index build failed")
    assert lifecycle.active_version(shop.pk) is None


def test_activating_a_version_without_an_index_queues_its_build(shop, django_capture_on_commit_callbacks):
    old = train_active_version(shop)
    new = train_active_version(shop)
    (_folder(old) / item_index.INDEX_FILE).unlink()  # e.g. a version indexed before this job existed

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.rollback(shop.pk, old.pk)

    assert (_folder(old) / item_index.INDEX_FILE).exists()
    assert lifecycle.active_version(shop.pk).pk == old.pk != new.pk


def test_a_process_that_finds_no_index_builds_it_and_says_so(shop, caplog):
    version = train_active_version(shop)
    (_folder(version) / item_index.INDEX_FILE).unlink()

    with caplog.at_level(logging.WARNING, logger="serving.index"):
        model = registry_cache.served_model(shop.pk)

    assert model is not None and model.index.ntotal == version.n_items
    assert (_folder(version) / item_index.INDEX_FILE).exists()
    assert any("building it in this serving process" in r.getMessage() for r in caplog.records)


@pytest.mark.celery_worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_serving_worker_indexes_and_activates_a_trained_version(celery_worker, all_tenants, settings, tmp_path):
    settings.RECSVC_ARTIFACT_DIR = tmp_path  # the worker reads the version's absolute artifact path
    tenant = TenantFactory()
    load_shop(tenant)

    version = run_training(ModelVersion.objects.create(tenant=tenant, hyperparameters=TINY))
    assert version.status == ModelVersion.Status.READY  # the worker activates it once indexed

    deadline = time.monotonic() + 120
    while version.status != ModelVersion.Status.ACTIVE:
        assert time.monotonic() < deadline, f"not activated: {version.status} {version.status_reason!r}"
        time.sleep(0.1)
        version.refresh_from_db()
    assert version.metrics["index"] == item_index.stored_params(_folder(version))
    assert registry_cache.served_model(tenant.pk).index_params == version.metrics["index"]
    registry_cache.clear()
