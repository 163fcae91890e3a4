"""Dashboard pages of training: runs with live progress and "Train now", the schedule, model versions with
their metrics and loss curve, activation and rollback.

They live in training/ (recs may not import training) and are mounted into the dashboard's URL namespace
by config/urls.py; they use the dashboard's shop resolution and layout like every other page. Owners
may change things, members read, and a version of another shop is a 404.
"""

from __future__ import annotations

import math

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.dashboard import charts
from core.dashboard.formats import format_duration
from core.dashboard.pages import render_page
from tenants.dashboard.shop import require_owner, shop_view
from training.jobs import BASELINE_PREFIX
from training.registry import lifecycle
from training.registry.models import IN_FLIGHT, ModelVersion, TrainingSchedule
from training.runs import RunInProgress, in_flight, request_run
from training.schedule import next_check_at, schedule_for

PAGE_SIZE = 25
MODEL_STATUSES = (ModelVersion.Status.READY, ModelVersion.Status.ACTIVE, ModelVersion.Status.ARCHIVED)
# The metrics the tables show, in this order, with the evaluation protocol's names (docs/training.md).
METRICS = (
    ("ndcg@10", "NDCG@10"), ("recall@10", "Recall@10"), ("hr@10", "HitRate@10"), ("recall@100", "Recall@100"),
    ("coverage@10", "Coverage@10"), ("ranker_auc", "Ranker AUC"), ("ranker_logloss", "Ranker log-loss"),
    ("train_seconds", "Training time"),
)
DURATION_SUFFIX = "_seconds"  # metrics in seconds, shown as durations
REFUSED_PREFIX = "not activated: "  # how lifecycle.activate records a refusal
PHASE_NAMES = {"evaluation": "evaluated model", "serving": "served model"}


class ScheduleForm(forms.ModelForm):
    interval_hours = forms.IntegerField(
        min_value=1, max_value=24 * 90, label="Every (hours)", widget=forms.TextInput(attrs={"inputmode": "numeric"})
    )
    min_new_events = forms.IntegerField(
        min_value=0, max_value=10**9, label="Only if at least this many new events",
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    )

    class Meta:
        model = TrainingSchedule
        fields = ["enabled", "interval_hours", "min_new_events"]
        labels = {"enabled": "Retrain automatically"}


def _numbered(tenant_id: int, queryset: QuerySet[ModelVersion]) -> QuerySet[ModelVersion]:
    """Each version with `number`, its place among the shop's versions (1 for the shop's first): pages say
    "Model 3", not the primary key every shop shares. Versions are never deleted, so a number stays."""
    earlier = (ModelVersion.objects.for_tenant(tenant_id).filter(pk__lte=OuterRef("pk")).order_by()
               .values("tenant").annotate(n=Count("pk")).values("n"))
    return queryset.annotate(number=Subquery(earlier))


def _with_number(version: ModelVersion | None) -> ModelVersion | None:
    """The version with its `number` set (see _numbered), for a row fetched elsewhere."""
    if version is not None and not hasattr(version, "number"):
        version.number = ModelVersion.objects.for_tenant(version.tenant_id).filter(pk__lte=version.pk).count()
    return version


def _versions(tenant_id: int):
    return _numbered(tenant_id, ModelVersion.objects.for_tenant(tenant_id).defer("curve").order_by("-pk"))


def _version_or_404(tenant_id: int, version_id: int) -> ModelVersion:
    version = _numbered(tenant_id, ModelVersion.objects.for_tenant(tenant_id)).filter(pk=version_id).first()
    if version is None:
        raise Http404("No such model version.")
    return version


def _metric_text(key: str, value: object) -> str:
    """A metric as the tables show it: durations in words, the rest with four decimals."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "\N{EN DASH}"
    return format_duration(value) if key.endswith(DURATION_SUFFIX) else f"{value:.4f}"


def in_words(key: str, value: object) -> str:
    """What a metric's value means for a shop, in a sentence (empty for metrics without one)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return ""
    share = round(100 * value)
    words = {
        "ndcg@10": f"how near the top of the 10 shown the products customers went on to engage with sit: "
                   f"{share} of a perfect 100",
        "recall@10": f"of 100 products customers went on to engage with, the top 10 caught {share}",
        "recall@100": f"of 100 products customers went on to engage with, the top 100 caught {share}",
        "hr@10": f"{share} of 100 customers found at least one of them in their top 10",
        "coverage@10": f"the top 10s of all customers together show {share}% of the catalog",
        "ranker_auc": f"the ranker puts a product the customer engaged with above one they did not {share} "
                      f"times in 100 (50 is chance)",
    }
    return words.get(key, "")


def _metric_rows(version: ModelVersion, active: ModelVersion | None) -> list[tuple[str, str, str, str, str]]:
    """(label, this version's value, the active version's value, the most-popular baseline's, the value in
    words), as text, for every numeric metric of this version (the baseline's own figures are its column)."""
    known = dict(METRICS)
    own = {k: v for k, v in version.metrics.items() if not k.startswith(BASELINE_PREFIX)}
    keys = [k for k, _ in METRICS if k in own] + sorted(
        k for k in own if k not in known and isinstance(own[k], (int, float))
    )
    other = active.metrics if active is not None and active.pk != version.pk else {}
    return [(known.get(k) or k.replace("_", " ").capitalize(), _metric_text(k, own.get(k)),
             _metric_text(k, other.get(k)), _metric_text(k, version.metrics.get(BASELINE_PREFIX + k)),
             in_words(k, own.get(k))) for k in keys]


def loss_charts(version: ModelVersion) -> list[tuple[str, object]]:
    """One loss chart per model (retrieval's softmax loss and the ranker's log-loss differ in scale by 100x),
    one line per phase; a model trained again in the same phase (the pipeline refits retrieval on all
    training events) gets a line of its own. x is the n-th progress report of each line."""
    charts_by_stage: dict[str, dict[str, list[float | None]]] = {}
    segments: dict[tuple, int] = {}
    previous: tuple | None = None
    for point in version.curve if isinstance(version.curve, list) else []:
        loss = point.get("loss") if isinstance(point, dict) else None
        if not isinstance(loss, (int, float)) or isinstance(loss, bool):
            continue
        key = (str(point.get("phase") or "run"), str(point.get("stage") or "model"))
        if key != previous:
            segments[key] = segments.get(key, 0) + 1
            previous = key
        refit = {1: "", 2: ", refit"}.get(segments[key], f", refit {segments[key] - 1}")
        name = f"{PHASE_NAMES.get(key[0], key[0])}{refit}"
        lines = charts_by_stage.setdefault(key[1], {})
        lines.setdefault(name, []).append(float(loss) if math.isfinite(loss) else None)
    result = []
    for stage, lines in charts_by_stage.items():
        n = max(len(values) for values in lines.values())
        series = [charts.Series(name, values + [None] * (n - len(values))) for name, values in lines.items()]
        title = f"{stage.capitalize()} training loss"
        chart = charts.line_chart(
            [str(i + 1) for i in range(n)], series, title=title, width=1000, height=220, from_zero=False
        )
        result.append((title, chart))
    return result


def _took(version: ModelVersion) -> str:
    """How long the run took (or has been running): "48 s", "3 min 5 s", "2 h 10 min"."""
    if version.started_at is None:
        return ""
    end = version.finished_at or (timezone.now() if version.status in IN_FLIGHT else None)
    if end is None:
        return ""
    return format_duration(max(int((end - version.started_at).total_seconds()), 0))


# --- Training runs ------------------------------------------------------------------------------------------


@shop_view
def training(request: HttpRequest) -> HttpResponse:
    tenant_id = request.shop.tenant.pk
    page = Paginator(_versions(tenant_id), PAGE_SIZE).get_page(request.GET.get("page"))
    schedule = schedule_for(tenant_id)
    return render_page(
        request,
        "dashboard/training.html",
        "training",
        {
            "page": page,
            "rows": [(v, _took(v), v.metrics.get(lifecycle.KEY_METRIC)) for v in page],
            "query": "",
            "now": timezone.now(),
            "running": _with_number(in_flight(tenant_id)),
            "live": any(v.status in IN_FLIGHT for v in page),
            "schedule": schedule,
            "next_check": next_check_at(schedule) if schedule and schedule.enabled else None,
            "schedule_form": ScheduleForm(instance=schedule),
        },
    )


@shop_view
@require_POST
def train_now(request: HttpRequest) -> HttpResponse:
    require_owner(request)
    try:
        version = request_run(request.shop.tenant.pk, trigger="dashboard")
    except RunInProgress as exc:
        messages.error(request, f"Not started: {exc}.")
    else:
        messages.success(request, f"Model {_with_number(version).number} is queued; it appears below as it trains.")
    return redirect("dashboard:training")


@shop_view
@require_POST
def training_schedule(request: HttpRequest) -> HttpResponse:
    require_owner(request)
    tenant = request.shop.tenant
    schedule = schedule_for(tenant.pk) or TrainingSchedule(tenant=tenant)
    form = ScheduleForm(request.POST, instance=schedule)
    if form.is_valid():
        form.save()
        messages.success(request, "Schedule saved.")
        return redirect("dashboard:training")
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else "Schedule"
        messages.error(request, f"{label}: {' '.join(errors)}")
    return redirect("dashboard:training")


# --- Models -------------------------------------------------------------------------------------------------


@shop_view
def models(request: HttpRequest) -> HttpResponse:
    tenant_id = request.shop.tenant.pk
    trained = _versions(tenant_id).filter(status__in=MODEL_STATUSES)
    page = Paginator(trained, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(v, [v.metrics.get(k) for k, _ in METRICS[:5]]) for v in page]
    return render_page(
        request,
        "dashboard/models.html",
        "models",
        {"page": page, "rows": rows, "metric_labels": [label for _, label in METRICS[:5]], "query": "",
         "active": _with_number(lifecycle.active_version(tenant_id))},
    )


@shop_view
def model_detail(request: HttpRequest, version_id: int) -> HttpResponse:
    tenant_id = request.shop.tenant.pk
    version = _version_or_404(tenant_id, version_id)
    active = _with_number(lifecycle.active_version(tenant_id))
    refusal = ""
    if version.status == ModelVersion.Status.READY and version.status_reason.startswith(REFUSED_PREFIX):
        refusal = version.status_reason.removeprefix(REFUSED_PREFIX)
    compare = active is not None and active.pk != version.pk
    ready = version.status == ModelVersion.Status.READY
    return render_page(
        request,
        "dashboard/model_detail.html",
        "models",
        {
            "version": version,
            "active": active,
            "metric_rows": _metric_rows(version, active),
            "compare": compare,
            "key_metric": version.metrics.get(lifecycle.KEY_METRIC),
            "active_key_metric": active.metrics.get(lifecycle.KEY_METRIC) if compare else None,
            "refusal": refusal,
            "loss_charts": loss_charts(version),
            "live": version.status in IN_FLIGHT,
            # Forward is an activation (guarded); back to an earlier version is a rollback (lifecycle.rollback).
            "can_activate": ready and (active is None or version.pk > active.pk),
            "can_rollback": ready and active is not None and version.pk < active.pk,
            "can_force": "regresses" in refusal,
            "hyperparameters": sorted(_flatten(version.hyperparameters).items()),
        },
    )


def _flatten(params: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in (params or {}).items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _still_serving(tenant_id: int) -> str:
    """After a refusal, which model serves still, by its number in the shop (the refusal's reason, shared with
    the API, says only "the active version")."""
    active = _with_number(lifecycle.active_version(tenant_id))
    return f" Model {active.number} keeps serving." if active is not None else ""


@shop_view
@require_POST
def model_activate(request: HttpRequest, version_id: int) -> HttpResponse:
    require_owner(request)
    version = _version_or_404(request.shop.tenant.pk, version_id)
    try:
        lifecycle.activate(version, force=request.POST.get("force") == "1")
    except lifecycle.ActivationRefused as exc:
        messages.error(request, f"Not activated: {exc}.{_still_serving(request.shop.tenant.pk)}")
    else:
        messages.success(request, f"Model {version.number} is now serving.")
    return redirect("dashboard:model_detail", version_id=version.pk)


@shop_view
@require_POST
def model_rollback(request: HttpRequest, version_id: int) -> HttpResponse:
    require_owner(request)
    version = _version_or_404(request.shop.tenant.pk, version_id)
    try:
        lifecycle.rollback(request.shop.tenant.pk, version.pk)
    except lifecycle.ActivationRefused as exc:
        messages.error(request, f"Not rolled back: {exc}.{_still_serving(request.shop.tenant.pk)}")
    else:
        messages.success(request, f"Rolled back: model {version.number} is serving again.")
    return redirect("dashboard:model_detail", version_id=version.pk)
