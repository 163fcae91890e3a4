"""The shop's running experiments, cached in each process and reloaded when its generation changes.

Like serving's compiled rules (serving/rules.py): every start, pause, ramp and stop sets the shop's
experiments generation in the cache (Redis) after its commit; a request reads that one key and reloads
from the database only when it differs from what the process holds (or, as a safety net when the key cannot
be read, after LOCAL_MAX_AGE_SECONDS). The hot path thus costs one cache read, and no database read.
"""

from __future__ import annotations

import threading
import time

from django.core.cache import cache
from django.db import transaction

from experiments.assignment import Assignment, RunningExperiment, RunningVariant, assign
from experiments.models import Experiment, Variant
from tenants.context import tenant_context

LOCAL_MAX_AGE_SECONDS = 60.0
# Must outlive the processes' copies; an expired key reads 0, which differs from any stored stamp.
GENERATION_TTL_SECONDS = 30 * 24 * 3600

_local: dict[int, tuple[int, float, tuple[RunningExperiment, ...]]] = {}
_lock = threading.Lock()


def _generation_key(tenant_id: int) -> str:
    return f"experiments:{{{int(tenant_id)}}}:gen"


def generation(tenant_id: int) -> int:
    return int(cache.get(_generation_key(tenant_id)) or 0)


def bump_generation(tenant_id: int) -> None:
    """Make every process reload the shop's running experiments. Call after the change commits."""
    cache.set(_generation_key(tenant_id), time.time_ns(), GENERATION_TTL_SECONDS)


def changed_on_commit(tenant_id: int) -> None:
    transaction.on_commit(lambda: bump_generation(tenant_id))


def load_running(tenant_id: int) -> tuple[RunningExperiment, ...]:
    """From the database: the shop's running experiments with their variants (two queries)."""
    with tenant_context(tenant_id):
        experiments = list(Experiment.objects.for_tenant(tenant_id).filter(
            status=Experiment.Status.RUNNING, slot_start__isnull=False).order_by("slot_start"))
        variants: dict[int, list[RunningVariant]] = {}
        rows = Variant.objects.for_tenant(tenant_id).filter(experiment__in=[e.pk for e in experiments])
        for v in rows.order_by("experiment_id", "position"):
            variants.setdefault(v.experiment_id, []).append(RunningVariant(v.name, v.weight, dict(v.config)))
    return tuple(RunningExperiment(e.pk, e.salt, e.slot_start, e.slot_end, e.holdout_share,
                                   tuple(variants.get(e.pk, ()))) for e in experiments if variants.get(e.pk))


def running_experiments(tenant_id: int) -> tuple[RunningExperiment, ...]:
    current = generation(tenant_id)
    now = time.monotonic()
    held = _local.get(tenant_id)
    if held is not None and held[0] == current and now - held[1] < LOCAL_MAX_AGE_SECONDS:
        return held[2]
    running = load_running(tenant_id)
    with _lock:
        _local[tenant_id] = (current, now, running)
    return running


def assignment_for(tenant_id: int, customer_id: str | None, session_id: str | None) -> Assignment | None:
    """The hot path's call: the unit's experiment and variant, or None."""
    if not customer_id and not session_id:
        return None
    return assign(tenant_id, running_experiments(tenant_id), customer_id, session_id)


def clear() -> None:
    """Forget every process-local copy (tests)."""
    _local.clear()
