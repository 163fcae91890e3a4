"""The Experiments pages: the list, the create form, and an experiment's results with its controls and a
power / minimum-detectable-effect calculator.

Everyone in the shop sees them; only owners create, start, pause and stop (as with rules). Writes go through
experiments.lifecycle, as the API's do; results come from the stored snapshots (experiments.results).
"""

from __future__ import annotations

import math
from collections import defaultdict

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from core.dashboard.charts import PALETTE, Series, line_chart
from core.dashboard.pages import render_page
from experiments import lifecycle
from experiments.catalog import GOAL_METRICS, METRICS
from experiments.metrics import estimates
from experiments.models import Experiment, StatsSnapshot, Variant
from experiments.power import minimum_detectable_effect, sample_size_per_arm, sequential_sample_size_per_arm
from experiments.results import Results, experiment_results
from experiments.stats import Estimate, VariantStats
from tenants.dashboard.shop import require_owner, shop_view

VARIANT_ROWS = 3
_GOALS = [(key, METRICS[key].label.capitalize()) for key in GOAL_METRICS]
_REWARDS = [("click", "Clicks"), ("add_to_cart", "Adds to cart"), ("purchase", "Purchases"), ("revenue", "Revenue")]


class ExperimentForm(forms.Form):
    name = forms.CharField(max_length=100)
    goal = forms.ChoiceField(choices=_GOALS, help_text="what a variant must improve to win")
    secondary = forms.MultipleChoiceField(choices=_GOALS, required=False, widget=forms.CheckboxSelectMultiple,
                                          help_text="also reported, corrected with the goal (Holm)")
    empty_margin = forms.FloatField(label="Guardrail: empty answers may rise by at most (%)", min_value=0.1,
                                    max_value=100, initial=5, required=False, help_text="blank: no guardrail")
    holdout_percent = forms.FloatField(label="Holdout (%)", min_value=0, max_value=90, initial=0,
                                       help_text="kept on the default serving, out of the analysis")
    traffic_percent = forms.FloatField(label="Traffic (%)", min_value=0.1, max_value=100, initial=100,
                                       help_text="of the shop's customers and sessions")
    planned_units = forms.IntegerField(min_value=100, initial=10_000,
                                       help_text="customers and sessions over all variants (tunes the test)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for i in range(VARIANT_ROWS):
            self.fields[f"variant_{i}_name"] = forms.CharField(
                label="Control" if i == 0 else f"Treatment {i}", max_length=32, required=i < 2,
                initial=["control", "treatment", ""][i])
            self.fields[f"variant_{i}_weight"] = forms.FloatField(label="Weight", min_value=0.001, initial=1,
                                                                  required=False)
            self.fields[f"variant_{i}_ranker"] = forms.BooleanField(label="Ranker on", required=False,
                                                                    initial=i == 0)
            self.fields[f"variant_{i}_bandit"] = forms.BooleanField(label="Bandit", required=False)
            self.fields[f"variant_{i}_reward"] = forms.ChoiceField(label="Bandit reward", choices=_REWARDS,
                                                                   initial="click", required=False)

    def variant_rows(self) -> list[tuple]:
        return [(self[f"variant_{i}_name"], self[f"variant_{i}_weight"], self[f"variant_{i}_ranker"],
                 self[f"variant_{i}_bandit"], self[f"variant_{i}_reward"]) for i in range(VARIANT_ROWS)]

    def _config(self, i: int) -> dict:
        c = self.cleaned_data
        config: dict = {"ranker": bool(c[f"variant_{i}_ranker"])}
        if c.get(f"variant_{i}_bandit"):
            config |= {"bandit": True, "bandit_reward": c.get(f"variant_{i}_reward") or "click"}
        return config

    def as_data(self) -> dict:
        c = self.cleaned_data
        variants = [{"name": c[f"variant_{i}_name"], "weight": c[f"variant_{i}_weight"] or 1.0,
                     "config": self._config(i)}
                    for i in range(VARIANT_ROWS) if c.get(f"variant_{i}_name")]
        margin = c.get("empty_margin")
        return {"name": c["name"], "goal": c["goal"], "secondary": [m for m in c["secondary"] if m != c["goal"]],
                "guardrails": [{"metric": "empty_answers", "margin": margin / 100}] if margin else [],
                "holdout_share": c["holdout_percent"] / 100, "traffic_share": c["traffic_percent"] / 100,
                "planned_units": c["planned_units"], "variants": variants}


class PowerForm(forms.Form):
    baseline = forms.FloatField(help_text="the control's mean of the goal metric")
    unit_sd = forms.FloatField(label="Standard deviation per unit", min_value=1e-9)
    n_per_arm = forms.IntegerField(label="Units per variant", min_value=10, max_value=10**9)
    alpha = forms.FloatField(min_value=0.001, max_value=0.5, initial=0.05)
    power = forms.FloatField(min_value=0.05, max_value=0.99, initial=0.8)
    lift = forms.FloatField(label="Lift to detect (%)", required=False, min_value=0.01, max_value=1000,
                            help_text="relative; answers with the units per variant each test needs")


def _experiment(request: HttpRequest, pk: int) -> Experiment:
    found = Experiment.objects.for_tenant(request.shop.tenant.pk).filter(pk=pk).first()
    if found is None:
        raise Http404("No such experiment")
    return found


@shop_view
def experiments_page(request: HttpRequest) -> HttpResponse:
    rows = list(Experiment.objects.for_tenant(request.shop.tenant.pk).order_by("-created_at", "-pk")[:200])
    variants: dict[int, list[str]] = defaultdict(list)
    for v in Variant.objects.for_tenant(request.shop.tenant.pk).filter(experiment__in=[e.pk for e in rows]):
        variants[v.experiment_id].append(v.name)
    return render_page(request, "dashboard/experiments.html", "experiments", {
        "rows": [(e, variants[e.pk], METRICS[e.goal].label if e.goal in METRICS else e.goal) for e in rows],
    })


@shop_view
@require_http_methods(["GET", "POST"])
def experiment_new(request: HttpRequest) -> HttpResponse:
    require_owner(request)
    form = ExperimentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            experiment = lifecycle.create_experiment(request.shop.tenant.pk, form.as_data())
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                target = field if field in form.fields else None
                prefix = "" if target or field == "non_field_errors" else f"{field.replace('_', ' ').capitalize()}: "
                for error in errors:
                    form.add_error(target, prefix + error)
        else:
            messages.success(request, f"Experiment “{experiment.name}” created as a draft: start it to enrol traffic.")
            return redirect("dashboard:experiment", pk=experiment.pk)
    return render_page(request, "dashboard/experiment_form.html", "experiments", {"form": form})


def _lift_chart(results: Results):
    if not results.series:
        return None
    days = sorted({p.day for p in results.series})
    labels = [d.strftime("%b %-d") for d in days]
    series = []
    for index, variant in enumerate(dict.fromkeys(p.variant for p in results.series)):
        points = {p.day: p for p in results.series if p.variant == variant}

        def pct(attr: str, points=points) -> list[float | None]:
            return [round(100 * getattr(points[d], attr), 3) if d in points
                    and math.isfinite(getattr(points[d], attr)) else None for d in days]

        color = PALETTE[index % len(PALETTE)]
        # The interval's bounds in grey around the lift's own colour.
        series += [Series(f"{variant} lift", pct("lift"), color), Series(f"{variant} low", pct("low"), "#c7cbd1"),
                   Series(f"{variant} high", pct("high"), "#c7cbd1")]
    goal = METRICS[results.experiment.goal].label
    return line_chart(labels, series, title=f"Lift in {goal} over time, with its always-valid interval (%)",
                      fmt=lambda v: f"{v:g}%")


def _baseline(results: Results) -> dict:
    """The power form's defaults: the control's goal metric in the latest snapshot, when there is one."""
    experiment = results.experiment
    snap = (StatsSnapshot.objects.for_tenant(experiment.tenant_id)
            .filter(experiment=experiment, variant=results.control).order_by("-day").first())
    if snap is None or experiment.goal not in snap.stats or snap.units < 2:
        return {}
    metric = METRICS[experiment.goal]
    by_variant, _ = estimates(metric, {"c": VariantStats(**snap.stats[experiment.goal])})
    e = by_variant["c"]
    sd = math.sqrt(float(e.variance) * float(e.n))
    if not (math.isfinite(float(e.value)) and math.isfinite(sd) and sd > 0):
        return {}
    return {"baseline": round(float(e.value), 6), "unit_sd": round(sd, 6)}


def _pct(x: float) -> str:
    return f"{100 * x:+.1f}%" if math.isfinite(x) else "n/a"


def _rows(results: Results) -> tuple[list[dict], list[dict]]:
    """The results table: each metric's and guardrail's lift and interval, formatted."""
    analysis = results.analysis
    if analysis is None:
        return [], []
    metrics = []
    for r in analysis.results:
        interval = analysis.lift_interval(r.effect)
        metrics.append({"variant": r.variant, "label": r.metric.label, "goal": r.goal,
                        "lift": _pct(float(r.effect.lift)),
                        "interval": f"[{_pct(float(interval.low))}, {_pct(float(interval.high))}]",
                        "p": f"{float(r.p_adjusted):.4f}", "significant": bool(r.significant)})
    guardrails = []
    for g in analysis.guardrails:
        interval = analysis.lift_interval(g.effect)
        guardrails.append({"variant": g.variant, "label": g.guardrail.metric.label,
                           "lift": _pct(float(g.effect.lift)),
                           "interval": f"[{_pct(float(interval.low))}, {_pct(float(interval.high))}]",
                           "margin": f"{100 * g.guardrail.margin:.1f}%", "status": g.check.status})
    return metrics, guardrails


@shop_view
def experiment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    experiment = _experiment(request, pk)
    results = experiment_results(experiment)
    variants = list(Variant.objects.for_tenant(experiment.tenant_id).filter(experiment=experiment))
    plan = sizes = None
    if "baseline" in request.GET:
        power_form = PowerForm(request.GET)
        if power_form.is_valid():
            c = power_form.cleaned_data
            baseline = Estimate(c["baseline"], c["unit_sd"] ** 2, 1.0)
            try:
                plan = minimum_detectable_effect(baseline, c["n_per_arm"], alpha=c["alpha"], power=c["power"])
                if c["lift"]:
                    lift = c["lift"] / 100
                    sizes = (c["lift"], sample_size_per_arm(baseline, lift, alpha=c["alpha"], power=c["power"]),
                             sequential_sample_size_per_arm(baseline, lift, alpha=c["alpha"], power=c["power"]))
            except (ValueError, ZeroDivisionError) as exc:
                power_form.add_error(None, str(exc))
    else:
        power_form = PowerForm(initial={"n_per_arm": max(experiment.planned_units // max(len(variants), 1), 10),
                                        "alpha": 0.05, "power": 0.8, **_baseline(results)})
    metric_rows, guardrail_rows = _rows(results)
    return render_page(request, "dashboard/experiment_detail.html", "experiments", {
        "experiment": experiment, "results": results, "chart": _lift_chart(results),
        "variants": [(v, results.units.get(v.name)) for v in variants],
        "metric_rows": metric_rows, "guardrail_rows": guardrail_rows,
        "plan_text": None if plan is None else (
            f"With {plan.n_per_arm:,.0f} units per variant: {100 * plan.mde_relative:.1f}% relative "
            f"({plan.mde_absolute:.4g} absolute) at a fixed horizon, {100 * plan.mde_relative_sequential:.1f}% "
            f"({plan.mde_absolute_sequential:.4g}) with the always-valid test, at alpha {plan.alpha:g} and power "
            f"{plan.power:g}."
            + ("" if sizes is None else f" To detect a {sizes[0]:g}% lift: {sizes[1]:,.0f} units per variant at a "
               f"fixed horizon, {sizes[2]:,.0f} with the always-valid test.")),
        "goal_label": METRICS[experiment.goal].label if experiment.goal in METRICS else experiment.goal,
        "power_form": power_form,
    })


_ACTIONS = {"start": lifecycle.start, "pause": lifecycle.pause, "stop": lifecycle.stop}


@shop_view
@require_POST
def experiment_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    require_owner(request)
    change = _ACTIONS.get(action)
    if change is None:
        raise Http404("No such action")
    experiment = _experiment(request, pk)
    try:
        experiment = change(experiment)
    except lifecycle.Conflict as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Experiment “{experiment.name}” is {experiment.status}.")
    return redirect("dashboard:experiment", pk=pk)
