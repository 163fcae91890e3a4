"""The beat task's snapshots equal a direct computation from recs.attribution.stats, day by day (cumulative
from the start), for the experiment's variants only; the results read them."""

from __future__ import annotations

import datetime as dt
import random
import uuid

import pytest
from django.conf import settings as django_settings

from experiments import snapshots, tasks
from experiments.models import Experiment, StatsSnapshot
from experiments.results import experiment_results
from recs.attribution import store
from recs.attribution.stats import attributed_sums
from recs.attribution.stream import ServedRecord
from tenants.context import tenant_context
from tests.conftest import _client_for
from tests.experiments.factories import make_experiment

pytestmark = pytest.mark.django_db

START = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.UTC)  # no test depends on today's date
NOW = START + dt.timedelta(days=2, hours=5)


def _served(tenant, experiment) -> None:
    """Answers over three days to 20 customers and some sessions, of both variants, the holdout and another
    label; impressions, clicks and purchases attributed to them."""
    ingest = _client_for(tenant, ["ingest"])
    products = [{"id": f"p{i}", "title": f"P{i}", "price": "10.00"} for i in range(8)]
    assert ingest.post("/v1/products/bulk", {"items": products}, format="json").status_code == 200
    rng = random.Random(5)
    answers = []
    # Few answers: recs.attribution.stats' statement takes seconds per call on a test database already.
    for i in range(80):
        customer = f"u{rng.randrange(20)}" if rng.random() < 0.8 else ""
        label = rng.choice(["control", "treatment", "treatment", "holdout"])
        answers.append(ServedRecord(
            tenant_id=tenant.pk, recommendation_id=uuid.UUID(int=rng.getrandbits(128)),
            served_at=START + dt.timedelta(minutes=40 * i), endpoint="recommendations",
            variant=f"{experiment.pk}:{label}" if rng.random() < 0.95 else "control", model_version=None,
            reason="popular", customer_id=customer, session_id="" if customer else f"s{rng.randrange(10)}",
            items=tuple(rng.sample([f"p{j}" for j in range(8)], 3)), propensities=(1.0,) * 3,
        ))
    store.store_answers(answers)
    events = []
    for a in answers:
        rid = str(a.recommendation_id)
        for product in a.items:
            if rng.random() < 0.6:
                events.append({"type": "impression", "product_id": product, "recommendation_id": rid})
            if rng.random() < 0.15:
                events.append({"type": "click", "product_id": product, "recommendation_id": rid})
            if rng.random() < 0.05:
                events.append({"type": "purchase", "product_id": product, "value": round(rng.uniform(5, 90), 2),
                               "recommendation_id": rid})
    for i, e in enumerate(events):
        e.update(customer_id="buyer", timestamp=(START + dt.timedelta(seconds=i)).isoformat())
    response = ingest.post("/v1/events/bulk", {"events": events}, format="json")
    assert response.status_code == 200 and response.json()["rejected"] == 0, response.content


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="served answers are stored through the Redis stream")
def test_snapshots_equal_a_direct_computation_day_by_day(tenant):
    experiment = make_experiment(tenant.pk, start=True)
    Experiment.dangerously_unscoped.filter(pk=experiment.pk).update(started_at=START)
    experiment.refresh_from_db()
    _served(tenant, experiment)

    with tenant_context(tenant.pk):
        written = snapshots.snapshot_experiment(experiment, now=NOW)
        rows = list(StatsSnapshot.objects.for_tenant(tenant).filter(experiment=experiment))

    assert written == 6 and {r.day for r in rows} == {START.date() + dt.timedelta(days=d) for d in range(3)}
    for row in rows:
        until = min(NOW, dt.datetime.combine(row.day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC))
        direct = attributed_sums(tenant.pk, START, until, snapshots.PRE_PERIOD)[
            (f"{experiment.pk}:{row.variant}", "recommendations")]
        assert row.units == direct.units
        assert row.stats == {k: s.as_dict() for k, s in direct.metric_stats().items()}
    last = {r.variant: r for r in rows if r.day == NOW.date()}
    assert last["treatment"].units > last["control"].units > 0

    results = experiment_results(experiment)
    assert results.day == NOW.date() and results.units == {v: r.units for v, r in last.items()}


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="served answers are stored through the Redis stream")
def test_the_beat_task_snapshots_every_shop_with_a_started_experiment(tenant, other_tenant):
    mine = make_experiment(tenant.pk, start=True)
    make_experiment(other_tenant.pk, "draft only")

    result = tasks.snapshot_experiments.delay().get()

    assert result["tenants"] == 1 and result["failed"] == 0 and result["written"] == 2
    with tenant_context(tenant.pk):
        assert StatsSnapshot.objects.for_tenant(tenant).filter(experiment=mine).count() == 2
