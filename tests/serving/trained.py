"""A tiny synthetic shop trained through the registry (about two seconds), shared by the serving tests."""

from __future__ import annotations

from demo.load import load_synthetic
from demo.synthetic import ShopSpec
from serving import candidate_rows, online_features, registry_cache
from serving import rules as compiled_rules
from tenants.context import tenant_context
from training.jobs import run_training
from training.registry.models import ModelVersion

TINY = {"retrieval": {"dim": 16, "epochs": 1, "batch_size": 512}, "ranker": {"epochs": 1, "batch_size": 512},
        "num_candidates": 50}
SPEC = ShopSpec(n_customers=150, n_products=300, n_events=6_000, seed=3)


def load_shop(tenant) -> None:
    with tenant_context(tenant.pk):
        load_synthetic(tenant.pk, SPEC)


def forget_served_state() -> None:
    """Drop what serving keeps per process (loaded models, item snapshots, compiled rules), so the next
    test's tenant ids and artifact folders start clean."""
    online_features.clear()
    registry_cache.clear()
    compiled_rules.clear()
    candidate_rows.clear()


def train_active_version(tenant) -> ModelVersion:
    """The caller points settings.RECSVC_ARTIFACT_DIR at a temporary directory first."""
    version = run_training(ModelVersion.objects.create(tenant=tenant, hyperparameters=TINY))
    assert version.status == ModelVersion.Status.ACTIVE, version.status_reason
    return version
