"""The Experiments pages with the Django test client: owners create and run experiments, members only read,
another shop's experiment is not found; the results page draws the lift over time as an SVG chart, states the
decision in words and warns of a sample ratio mismatch."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone
from scipy import stats as sps

from experiments.models import Experiment, StatsSnapshot, Variant
from experiments.power import sequential_sample_size_per_arm
from experiments.stats import Estimate, VariantStats
from tests.experiments._fixtures import stats_with
from tests.experiments.factories import make_experiment

pytestmark = pytest.mark.django_db

DAY = dt.date(2024, 3, 1)  # no test depends on today's date


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


FORM = {"name": "no ranker", "goal": "revenue_per_1000", "secondary": ["click_through"], "empty_margin": "5",
        "holdout_percent": "0", "traffic_percent": "100", "planned_units": "40000",
        "variant_0_name": "control", "variant_0_weight": "1", "variant_0_ranker": "on",
        "variant_1_name": "retrieval", "variant_1_weight": "1", "variant_2_name": "", "variant_2_weight": ""}


def test_an_owner_creates_starts_and_stops_an_experiment(owner, tenant):
    client = _signed_in(owner)
    assert client.get("/experiments").status_code == 200
    assert "New experiment" in client.get("/experiments").content.decode()

    response = client.post("/experiments/new", FORM)
    assert response.status_code == 302, response.content.decode()[:2000]
    experiment = Experiment.dangerously_unscoped.get(tenant=tenant)
    assert response["Location"] == f"/experiments/{experiment.pk}"
    assert experiment.guardrails == [{"metric": "empty_answers", "margin": 0.05}]

    assert client.post(f"/experiments/{experiment.pk}/start").status_code == 302
    experiment.refresh_from_db()
    assert experiment.status == "running"
    page = client.get(f"/experiments/{experiment.pk}").content.decode()
    assert "Running" in page and "ranker off" in page and 'id="stop"' in page
    client.post(f"/experiments/{experiment.pk}/stop")
    experiment.refresh_from_db()
    assert experiment.status == "stopped"
    assert "No statistics yet" in client.get(f"/experiments/{experiment.pk}").content.decode()


def test_the_form_creates_a_bandit_variant_with_its_reward(owner, tenant):
    client = _signed_in(owner)
    form = {**FORM, "name": "bandit", "variant_1_name": "bandit", "variant_1_ranker": "on", "variant_1_bandit": "on",
            "variant_1_reward": "purchase"}
    response = client.post("/experiments/new", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    experiment = Experiment.dangerously_unscoped.get(tenant=tenant)
    configs = [v.config for v in Variant.dangerously_unscoped.filter(experiment=experiment).order_by("position")]
    assert not configs[0].get("bandit")
    assert configs[1]["bandit"] is True and configs[1]["bandit_reward"] == "purchase"
    assert "bandit (purchase, head 5, explores 1)" in client.get(f"/experiments/{experiment.pk}").content.decode()


def test_the_form_shows_the_domains_errors(owner, tenant):
    client = _signed_in(owner)
    response = client.post("/experiments/new", {**FORM, "variant_1_name": "control"})
    assert response.status_code == 200
    assert "used twice" in response.content.decode()
    assert not Experiment.dangerously_unscoped.filter(tenant=tenant).exists()


def test_a_member_reads_but_cannot_create_or_start(member, tenant):
    experiment = make_experiment(tenant.pk)
    client = _signed_in(member)

    assert client.get(f"/experiments/{experiment.pk}").status_code == 200
    assert 'id="start"' not in client.get(f"/experiments/{experiment.pk}").content.decode()
    assert client.post("/experiments/new", FORM).status_code == 403
    assert client.post(f"/experiments/{experiment.pk}/start").status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == "draft"


def test_another_shops_experiment_is_not_found(outsider, tenant):
    experiment = make_experiment(tenant.pk)
    client = _signed_in(outsider)

    assert client.get(f"/experiments/{experiment.pk}").status_code == 404
    assert client.post(f"/experiments/{experiment.pk}/start").status_code == 404
    assert experiment.name not in client.get("/experiments").content.decode()
    experiment.refresh_from_db()
    assert experiment.status == "draft"


def _snapshot(experiment: Experiment, day: dt.date, variant: str, units: int, stats: VariantStats) -> None:
    StatsSnapshot.dangerously_unscoped.create(
        tenant_id=experiment.tenant_id, experiment=experiment, variant=variant, day=day, units=units,
        stats={k: stats.as_dict() for k in ("revenue_per_1000", "click_through", "conversion", "empty_answers")},
        computed_at=timezone.now())


def _days_of_data(experiment: Experiment, treatment_units=lambda n: n) -> None:
    for d in range(3):
        n = 10_000 * (d + 1)
        _snapshot(experiment, DAY + dt.timedelta(days=d), "control", n, stats_with(1.0, 1.0, n))
        _snapshot(experiment, DAY + dt.timedelta(days=d), "treatment", treatment_units(n),
                  stats_with(1.1, 1.0, treatment_units(n)))


def test_the_results_page_draws_the_lift_and_states_the_decision(member, tenant):
    experiment = make_experiment(tenant.pk, planned_units=60_000, start=True)
    _days_of_data(experiment)

    page = _signed_in(member).get(f"/experiments/{experiment.pk}").content.decode()

    assert '<div id="lift-chart"><svg class="chart"' in page
    assert page.count('class="line"') == 3  # the lift and its interval's two bounds
    assert "treatment raises revenue per 1,000 recommendations by 10.0%" in page
    assert "srm-warning" not in page
    assert "Mar 3" in page  # the last day's point


def test_a_sample_ratio_mismatch_is_shown_as_a_warning(member, tenant):
    experiment = make_experiment(tenant.pk, start=True)
    _days_of_data(experiment, treatment_units=lambda n: int(n * 1.1))

    page = _signed_in(member).get(f"/experiments/{experiment.pk}").content.decode()

    assert 'id="srm-warning"' in page and "Sample ratio mismatch (chi-square p =" in page


def test_the_power_calculator_answers_with_the_mde(member, tenant):
    experiment = make_experiment(tenant.pk)
    page = _signed_in(member).get(f"/experiments/{experiment.pk}", {
        "baseline": "1.0", "unit_sd": "1.0", "n_per_arm": "10000", "alpha": "0.05", "power": "0.8"}).content.decode()

    # NormalIndPower: d = 0.0396 at 10,000 per arm, alpha 0.05, power 0.8.
    assert 'id="mde"' in page and "4.0% relative" in page


def test_the_power_calculator_answers_with_the_units_a_lift_needs(member, tenant):
    experiment = make_experiment(tenant.pk)
    page = _signed_in(member).get(f"/experiments/{experiment.pk}", {
        "baseline": "1.0", "unit_sd": "1.0", "n_per_arm": "10000", "alpha": "0.05", "power": "0.8",
        "lift": "4"}).content.decode()

    # Textbook fixed horizon: 2 (z_0.975 + z_0.8)^2 / 0.04^2 = 9,811 units per variant.
    fixed = 2 * (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) ** 2 / 0.04**2
    sequential = sequential_sample_size_per_arm(Estimate(1.0, 1.0, 1.0), 0.04)
    assert f"To detect a 4% lift: {fixed:,.0f} units per variant at a fixed horizon, {sequential:,.0f} with the " \
           "always-valid test." in page
