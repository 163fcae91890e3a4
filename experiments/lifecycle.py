"""Creating an experiment and moving it through its life: draft -> running <-> paused -> stopped.

These functions decide; the API and the dashboard call them and turn their ValidationError into a 400 and
their Conflict into a 409. Every change that the hot path sees (start, pause, resume, ramp, stop) bumps the
shop's experiments generation after the commit (experiments.running).

Slots: a start reserves the first free run of round(traffic_share x SLOTS) slots of the shop's layer among
the running and paused experiments (experiments.assignment), so concurrent experiments never share a unit;
a start finding no room is a Conflict. A pause keeps the slots (the same units come back on resume); a stop
frees them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from experiments.assignment import HOLDOUT, SLOTS
from experiments.catalog import GOAL_METRICS, GUARDRAIL_METRICS
from experiments.config import validate_config
from experiments.models import Experiment, Variant
from experiments.running import changed_on_commit

MAX_VARIANTS = 5
MAX_EXPERIMENTS_PER_SHOP = 200
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
Status = Experiment.Status


class Conflict(Exception):
    """The experiment's state forbids the change (starting a stopped one, no free slots...)."""


def _share(value: object, field: str, low: float, high: float, errors: dict, *, low_open: bool = False) -> float:
    try:
        share = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        errors[field] = ["Must be a number."]
        return 0.0
    if not (low < share if low_open else low <= share) or share > high:
        errors[field] = [f"Must lie in {'(' if low_open else '['}{low:g}, {high:g}]."]
    return share


def _variants(raw: object, errors: dict) -> list[dict]:
    if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_VARIANTS:
        errors["variants"] = [f"Give 2 to {MAX_VARIANTS} variants; the first is the control."]
        return []
    clean, seen = [], set()
    for i, item in enumerate(raw, start=1):
        where = f"Variant {i}"
        if not isinstance(item, dict) or set(item) - {"name", "weight", "config"}:
            errors.setdefault("variants", []).append(f"{where}: an object of name, weight and config.")
            continue
        name = str(item.get("name", ""))
        if not _NAME.match(name) or name == HOLDOUT:
            errors.setdefault("variants", []).append(
                f"{where}: name must be 1-32 letters, digits, _ or -, and not '{HOLDOUT}'.")
        elif name in seen:
            errors.setdefault("variants", []).append(f"{where}: the name {name!r} is used twice.")
        seen.add(name)
        weight = item.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1000:
            errors.setdefault("variants", []).append(f"{where}: weight must be a number in (0, 1000].")
            weight = 1
        try:
            config = validate_config(item.get("config"))
        except ValueError as exc:
            errors.setdefault("variants", []).append(f"{where}: config {exc}")
            config = {}
        clean.append({"name": name, "weight": float(weight), "config": config})
    return clean


def validate_experiment(data: Mapping) -> dict:
    """The experiment's fields, checked and with their defaults; ValidationError keyed by field."""
    errors: dict[str, list[str]] = {}
    unknown = set(data) - {"name", "goal", "secondary", "guardrails", "holdout_share", "traffic_share",
                           "planned_units", "variants"}
    if unknown:
        errors["non_field_errors"] = [f"Unknown fields: {', '.join(sorted(unknown))}."]
    name = str(data.get("name") or "").strip()
    if not 1 <= len(name) <= 100:
        errors["name"] = ["Give a name of 1-100 characters."]
    goal = data.get("goal")
    if goal not in GOAL_METRICS:
        errors["goal"] = [f"One of {', '.join(GOAL_METRICS)}."]
    secondary = data.get("secondary") or []
    if (not isinstance(secondary, list) or any(m not in GOAL_METRICS or m == goal for m in secondary)
            or len(set(secondary)) != len(secondary)):
        errors["secondary"] = [f"A list of distinct metrics other than the goal, among {', '.join(GOAL_METRICS)}."]
    guardrails, raw_guardrails = [], data.get("guardrails") or []
    if not isinstance(raw_guardrails, list) or len(raw_guardrails) > len(GUARDRAIL_METRICS):
        errors["guardrails"] = ["A list of {metric, margin}."]
        raw_guardrails = []
    for g in raw_guardrails:
        metric = g.get("metric") if isinstance(g, dict) else None
        margin = g.get("margin") if isinstance(g, dict) else None
        if (metric not in GUARDRAIL_METRICS or isinstance(margin, bool) or not isinstance(margin, int | float)
                or not 0 < margin <= 1 or any(metric == o["metric"] for o in guardrails)):
            errors["guardrails"] = [f"Each {{metric, margin}}: metric one of {', '.join(GUARDRAIL_METRICS)} "
                                    "(once), margin in (0, 1] (0.05: may worsen by at most 5%)."]
            break
        guardrails.append({"metric": metric, "margin": float(margin)})
    holdout = _share(data.get("holdout_share", 0.0), "holdout_share", 0.0, 0.9, errors)
    traffic = _share(data.get("traffic_share", 1.0), "traffic_share", 0.0, 1.0, errors, low_open=True)
    if not errors.get("traffic_share") and round(traffic * SLOTS) < 1:
        errors["traffic_share"] = [f"Must be at least {1 / SLOTS:g}."]
    planned = data.get("planned_units", 10_000)
    if isinstance(planned, bool) or not isinstance(planned, int) or not 100 <= planned <= 1_000_000_000:
        errors["planned_units"] = ["A whole number of units in [100, 1,000,000,000] (all variants together)."]
    variants = _variants(data.get("variants"), errors)
    if errors:
        raise ValidationError(errors)
    return {"name": name, "goal": goal, "secondary": list(secondary), "guardrails": guardrails,
            "holdout_share": holdout, "traffic_share": traffic, "planned_units": planned, "variants": variants}


def create_experiment(tenant_id: int, data: Mapping) -> Experiment:
    """A draft experiment with its variants."""
    clean = validate_experiment(data)
    variants = clean.pop("variants")
    with transaction.atomic():
        if Experiment.objects.for_tenant(tenant_id).count() >= MAX_EXPERIMENTS_PER_SHOP:
            raise ValidationError({"non_field_errors": [f"At most {MAX_EXPERIMENTS_PER_SHOP} experiments per shop."]})
        if Experiment.objects.for_tenant(tenant_id).filter(name=clean["name"]).exists():
            raise ValidationError({"name": ["The shop already has an experiment of this name."]})
        try:
            with transaction.atomic():
                experiment = Experiment.objects.for_tenant(tenant_id).create(tenant_id=tenant_id, **clean)
        except IntegrityError:  # a concurrent create of the same name
            raise ValidationError({"name": ["The shop already has an experiment of this name."]}) from None
        Variant.objects.for_tenant(tenant_id).bulk_create([
            Variant(tenant_id=tenant_id, experiment=experiment, position=i, **v) for i, v in enumerate(variants)
        ])
    return experiment


def _locked(experiment: Experiment) -> tuple[Experiment, list[Experiment]]:
    """The experiment and the shop's others, locked: starts of one shop run one at a time."""
    rows = list(Experiment.objects.for_tenant(experiment.tenant_id).select_for_update().order_by("pk"))
    me = next(e for e in rows if e.pk == experiment.pk)
    return me, [e for e in rows if e.pk != experiment.pk]


def free_slots(taken: list[tuple[int, int]], size: int) -> int | None:
    """The first start of `size` free slots among the taken [start, end) ranges, or None."""
    start = 0
    for low, high in sorted(taken):
        if low - start >= size:
            return start
        start = max(start, high)
    return start if SLOTS - start >= size else None


def start(experiment: Experiment) -> Experiment:
    """Draft -> running (reserving its slots), or paused -> running (keeping them)."""
    with transaction.atomic():
        me, others = _locked(experiment)
        if me.status == Status.RUNNING:
            return me
        if me.status == Status.STOPPED:
            raise Conflict("A stopped experiment cannot start again; create a new one.")
        if me.slot_start is None or me.status == Status.DRAFT:
            size = max(1, round(me.traffic_share * SLOTS))
            taken = [(e.slot_start, e.slot_end) for e in others
                     if e.status in (Status.RUNNING, Status.PAUSED) and e.slot_start is not None]
            at = free_slots(taken, size)
            if at is None:
                share = sum(high - low for low, high in taken) / SLOTS
                raise Conflict(f"The shop's running and paused experiments hold {share:.0%} of its traffic: no "
                               f"room for {me.traffic_share:.0%}. Stop one or lower this one's traffic share.")
            me.slot_start, me.slot_end = at, at + size
            me.started_at = timezone.now()
        me.status = Status.RUNNING
        me.save(update_fields=["status", "slot_start", "slot_end", "started_at"])
        changed_on_commit(me.tenant_id)
    return me


def pause(experiment: Experiment) -> Experiment:
    """Running -> paused: its units get the default serving until it resumes, and keep their variants."""
    with transaction.atomic():
        me, _ = _locked(experiment)
        if me.status == Status.PAUSED:
            return me
        if me.status != Status.RUNNING:
            raise Conflict(f"Only a running experiment can pause; this one is {me.status}.")
        me.status = Status.PAUSED
        me.save(update_fields=["status"])
        changed_on_commit(me.tenant_id)
    return me


def stop(experiment: Experiment) -> Experiment:
    """Running or paused -> stopped, for good; its slots are freed for other experiments."""
    with transaction.atomic():
        me, _ = _locked(experiment)
        if me.status == Status.STOPPED:
            return me
        if me.status == Status.DRAFT:
            raise Conflict("A draft has not started; there is nothing to stop.")
        me.status = Status.STOPPED
        me.stopped_at = timezone.now()
        me.save(update_fields=["status", "stopped_at"])
        changed_on_commit(me.tenant_id)
    return me


def ramp(experiment: Experiment, weights: Mapping[str, object]) -> Experiment:
    """New traffic weights for the variants (every variant named, each > 0). The units between the moved
    boundaries change variant; the sample-ratio check compares the counts with the new weights."""
    with transaction.atomic():
        me, _ = _locked(experiment)
        if me.status == Status.STOPPED:
            raise Conflict("A stopped experiment cannot be ramped.")
        variants = list(Variant.objects.for_tenant(me.tenant_id).filter(experiment=me))
        names = {v.name for v in variants}
        if not isinstance(weights, Mapping) or set(weights) != names:
            raise ValidationError({"weights": [f"Give a weight for each variant: {', '.join(sorted(names))}."]})
        for name, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, int | float) or not 0 < w <= 1000:
                raise ValidationError({"weights": [f"{name}: a number in (0, 1000]."]})
        for v in variants:
            v.weight = float(weights[v.name])
        Variant.objects.for_tenant(me.tenant_id).bulk_update(variants, ["weight"])
        changed_on_commit(me.tenant_id)
    return me
