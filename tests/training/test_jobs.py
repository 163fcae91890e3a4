"""Training runs through the registry: real data in PostgreSQL, real (tiny) models, real artifacts."""

from __future__ import annotations

import os

import numpy as np
import pytest

from demo.load import load_synthetic
from demo.synthetic import ShopSpec
from tenants.context import tenant_context
from tests.factories import TenantFactory
from training.data import temporal_split
from training.datasets import load_tenant_dataset
from training.jobs import evaluate_pipeline, run_training
from training.pipeline import TrainedPipeline, train_pipeline
from training.registry import lifecycle, storage
from training.registry.models import ModelVersion

TINY = {"retrieval": {"dim": 16, "epochs": 1, "batch_size": 512}, "ranker": {"epochs": 1, "batch_size": 512},
        "num_candidates": 50}


@pytest.fixture
def shop_tenant(all_tenants):
    # tests/training/conftest.py's `tenant` is an array fixture; this is a database tenant.
    return TenantFactory()


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.RECSVC_ARTIFACT_DIR = tmp_path


@pytest.fixture
def shop(shop_tenant, artifacts):
    tenant = shop_tenant
    with tenant_context(tenant.pk):
        load_synthetic(tenant.pk, ShopSpec(n_customers=150, n_products=300, n_events=6_000, seed=3))
    return tenant


def _version(tenant, **fields) -> ModelVersion:
    return ModelVersion.objects.create(tenant=tenant, hyperparameters=TINY, **fields)


@pytest.mark.slow
def test_run_trains_saves_and_activates(shop):
    version = run_training(_version(shop))
    assert version.status == ModelVersion.Status.ACTIVE, version.status_reason
    assert 0.0 <= version.metrics["ndcg@10"] <= 1.0 and "recall@100" in version.metrics
    # CPU seconds over every thread of the process: some, and at most the wall time on every core.
    assert 0 < version.metrics["train_cpu_seconds"] <= version.metrics["train_seconds"] * (os.cpu_count() or 1)
    assert version.n_events > 1000 and version.n_items == 300
    assert version.progress["percent"] == 100.0
    assert {p["phase"] for p in version.curve} >= {"evaluation", "serving"}
    pipeline = TrainedPipeline.load(storage.local_path(version.artifact_uri))
    assert pipeline.retrieval.item_embeddings.shape == (300, 16)
    assert lifecycle.active_version(shop.pk) == version


@pytest.mark.slow
def test_the_served_pipeline_is_the_evaluated_recipe_trained_on_every_event(shop):
    """The run evaluates train_pipeline on its train part and serves train_pipeline on every event: the ranker
    learns what customers did after the train part (not after a fifth less), retrieval is refit on all."""
    version = run_training(_version(shop))
    served = TrainedPipeline.load(storage.local_path(version.artifact_uri))
    with tenant_context(shop.pk):
        dataset = load_tenant_dataset(shop.pk)
    params = {"retrieval_params": TINY["retrieval"], "ranker_params": TINY["ranker"], "num_candidates": 50}
    recipe = train_pipeline(dataset.interactions, dataset.items, item_versions=dataset.item_versions, **params)
    np.testing.assert_array_equal(served.retrieval.item_embeddings, recipe.retrieval.item_embeddings)
    # The same examples and labels (candidates of the same stage retrieval, what customers did next); the
    # evaluated pipeline's ranker had those of the train part's own last fifth.
    assert served.ranker.metrics["examples"] == recipe.ranker.metrics["examples"]
    assert served.ranker.metrics["positive_rate"] == recipe.ranker.metrics["positive_rate"]
    train, _ = temporal_split(dataset.interactions)
    evaluated = train_pipeline(train, dataset.items, item_versions=dataset.item_versions, **params)
    assert evaluated.ranker.metrics["examples"] < served.ranker.metrics["examples"]


def test_too_little_data_fails_cleanly_and_keeps_nothing(shop_tenant, artifacts, settings):
    settings.RECSVC_MIN_TRAINING_EVENTS = 10
    tenant = shop_tenant
    version = run_training(_version(tenant))
    assert version.status == ModelVersion.Status.FAILED
    assert "at least 10" in version.status_reason
    assert not storage.version_dir(tenant.pk, version.pk).exists()
    assert lifecycle.active_version(tenant.pk) is None


def test_activation_refuses_a_regression_and_rollback_restores(shop_tenant):
    tenant = shop_tenant
    good = _version(tenant, status="ready", metrics={"ndcg@10": 0.15})
    lifecycle.activate(good)
    worse = _version(tenant, status="ready", metrics={"ndcg@10": 0.10})
    with pytest.raises(lifecycle.ActivationRefused):
        lifecycle.activate(worse)
    worse.refresh_from_db()
    assert worse.status == "ready" and "regresses" in worse.status_reason
    assert lifecycle.active_version(tenant.pk) == good
    lifecycle.activate(worse, force=True)
    assert lifecycle.active_version(tenant.pk) == worse
    lifecycle.rollback(tenant.pk, good.pk)
    assert lifecycle.active_version(tenant.pk) == good
    assert ModelVersion.objects.for_tenant(tenant).filter(status="active").count() == 1


def test_failed_or_unvalidated_versions_never_activate(shop_tenant):
    tenant = shop_tenant
    failed = _version(tenant, status="failed", metrics={"ndcg@10": 0.3})
    with pytest.raises(lifecycle.ActivationRefused):
        lifecycle.activate(failed, force=True)
    no_metric = _version(tenant, status="ready", metrics={})
    with pytest.raises(lifecycle.ActivationRefused):
        lifecycle.activate(no_metric)
    assert lifecycle.active_version(tenant.pk) is None


def test_cli_refuses_while_a_run_is_in_flight(shop_tenant):
    from django.core.management import CommandError, call_command

    _version(shop_tenant, status="training")
    with pytest.raises(CommandError, match="one run at a time"):
        call_command("train", tenant=shop_tenant.slug)


def test_a_run_reaped_meanwhile_keeps_the_reapers_verdict(shop):
    version = _version(shop)

    def reaped_during_evaluation(*args, **kwargs):
        ModelVersion.objects.for_tenant(shop).filter(pk=version.pk).update(status="failed", status_reason="worker lost")
        return evaluate_pipeline(*args, **kwargs)

    version = run_training(version, evaluate=reaped_during_evaluation)
    assert (version.status, version.status_reason) == ("failed", "worker lost")
    assert not storage.version_dir(shop.pk, version.pk).exists()
    assert lifecycle.active_version(shop.pk) is None
