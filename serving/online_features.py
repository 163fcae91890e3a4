"""The online source of the ranker's point-in-time features, without reading a tenant's events per request.

Where each part of the ranker's dense input comes from when serving (definitions: training/features.py,
the same code training uses, so there is one implementation of every feature):

* item side (popularity windows, age, recency, mean weight, window totals): an *item snapshot*, the
  ITEM_FEATURES of every item of the active version as of one moment, a float32 matrix
  (n_items x 17, 68 MB per million items) in the version's artifact folder (`online/`, see
  `training.artifacts.save_item_snapshot`). Every serving process memory-maps it (one copy in the page
  cache per machine) and swaps to a newer one when the pointer file changes (one `stat` per request).
  The training run ships the first snapshot with the version; the `serving` queue rebuilds it every
  RECSVC_ONLINE_FEATURES_REFRESH_S (celery beat, `serving.tasks.refresh_online_features`) and on demand
  when a request finds none, or one older than twice that period (beat not running, a rolled-back
  version). Its moment `as_of` is just after the tenant's newest event (like the popular-items window and
  the training protocol's query time), so a shop whose feed paused still gets meaningful windows.
  Staleness of the item side: at most the refresh period plus one build (5 minutes + seconds by default).
* customer side (event count and mean weight): one indexed aggregate over the customer's own events
  (`customer_activity`), per request, so an event posted now counts in the next answer.
* taste (category affinity, price gap, embedding similarity, co-occurrence): the history the funnel
  embedded the customer with, against the version's trained catalog (`item_features.npz`), item embeddings
  and item co-occurrence table (`item_neighbours/`, memory-mapped; a version without one is served the
  columns its ranker learned, which do not include it).
* retrieval score and rank: from the funnel.

Versions trained before `item_features.npz` existed have no trained vocabulary for the ranker's sparse
features: they are served in retrieval order (see serving/ranking.py) and say so in the log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Q, Sum

from recs.ingest.event_types import event_weights
from recs.models import Event
from serving.registry_cache import ServedModel
from training.registry import load as registry
from training.registry.load import (
    CatalogFeatures,
    ItemFeatures,
    ItemSnapshot,
    Jagged,
    ModelVersion,
    item_snapshot,
    load_item_features,
    load_item_neighbours,
    load_item_snapshot,
    read_snapshot_pointer,
    save_item_snapshot,
    weighted_events,
)
from training.registry.load import snapshot_pointer as _pointer_path

log = logging.getLogger(__name__)
RATING = "rating"
# The `serving` queue's task that rebuilds a version's snapshot (serving/tasks.py registers it under this
# name); queued by name, as the tasks module imports this one.
BUILD_SNAPSHOT_TASK = "serving.tasks.build_online_features"


# -- building snapshots (serving queue) -------------------------------------------------------------


def _item_indices(product_pks: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Item index of each product pk in the version's catalog, -1 for products newer than it."""
    if len(product_pks) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(product_pks, kind="stable")
    sorted_pks = product_pks[order]
    pos = np.clip(np.searchsorted(sorted_pks, wanted), 0, len(sorted_pks) - 1)
    return np.where(sorted_pks[pos] == wanted, order[pos], -1).astype(np.int64)


def build_snapshot(tenant_id: int, version_id: int, *, as_of: int | None = None) -> ItemSnapshot | None:
    """Rebuild the version's item snapshot from the tenant's events (before `as_of`, default all) and
    publish it. None when the version has no artifacts (nothing to do). The caller is in the tenant's
    context. Cost: one pass over the tenant's events, like a training run's load."""
    version = ModelVersion.objects.for_tenant(tenant_id).filter(pk=version_id).first()
    if version is None or not version.artifact_uri:
        return None
    folder = registry.local_path(version.artifact_uri)
    product_pks = np.load(folder / "product_pks.npy", allow_pickle=False).astype(np.int64)
    until = dt.datetime.fromtimestamp(as_of, dt.UTC) if as_of is not None else None
    _, products, ts, weight = weighted_events(tenant_id, until=until)
    snapshot = item_snapshot(_item_indices(product_pks, products), ts, weight, len(product_pks), as_of)
    save_item_snapshot(folder, snapshot)
    log.info("item snapshot of version %s (tenant %s): %d items as of %d from %d events",
             version_id, tenant_id, snapshot.n_items, snapshot.as_of, snapshot.n_events)
    return snapshot


_requested: dict[tuple[int, int], float] = {}


def request_snapshot(tenant_id: int, version_id: int) -> bool:
    """Queue one snapshot build for the version (at most one per refresh period across processes)."""
    period = settings.RECSVC_ONLINE_FEATURES_REFRESH_S
    now = time.monotonic()
    if _requested.get((tenant_id, version_id), -float("inf")) > now - period:
        return False  # this process asked recently: not even a shared-cache round trip
    _requested[(tenant_id, version_id)] = now
    if not cache.add(f"online-features-build:{int(tenant_id)}:{int(version_id)}", 1, period):
        return False
    def send() -> None:
        try:
            registry.send_task_by_name(BUILD_SNAPSHOT_TASK, tenant_id, version_id)
        except Exception:  # a broker hiccup must not fail the request that noticed; the beat retries
            log.exception("could not queue the item snapshot build of version %s", version_id)

    transaction.on_commit(send)
    return True


# -- the per-process view --------------------------------------------------------------------------


@dataclass
class OnlineFeatures:
    """One tenant's online feature state in this process, for its active version."""

    version_id: int
    folder: Path
    items: ItemFeatures | None  # the catalog as trained (None: an artifact from before it was saved)
    catalog: CatalogFeatures | None
    snapshot: ItemSnapshot | None = None
    built_at: float | None = None  # wall clock of the snapshot's build
    _stamp: tuple[int, int] | None = field(default=None, repr=False)
    # The pointer file's path as a string, made once: building the Path cost more than the stat (20 us).
    pointer: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.pointer = str(_pointer_path(self.folder))

    def age_seconds(self, now: float | None = None) -> float | None:
        return None if self.built_at is None else max((now or time.time()) - self.built_at, 0.0)


_state: dict[int, OnlineFeatures] = {}
_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


def _stamp(pointer: str) -> tuple[int, int] | None:
    try:
        st = os.stat(pointer)
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_ino


def _load_version(tenant_id: int, model: ServedModel) -> OnlineFeatures:
    uri = ModelVersion.objects.for_tenant(tenant_id).filter(pk=model.version_id).values_list(
        "artifact_uri", flat=True
    ).first()
    if not uri:
        raise LookupError(f"version {model.version_id} of tenant {tenant_id} has no artifacts")
    folder = registry.local_path(uri)
    items = load_item_features(folder)
    if items is None:
        log.warning("version %s of tenant %s has no item_features.npz (trained before the online ranker): "
                    "served in retrieval order", model.version_id, tenant_id)
    elif items.n_items != model.n_items:
        log.error("version %s of tenant %s: item_features.npz has %d items for %d in the model: served in "
                  "retrieval order", model.version_id, tenant_id, items.n_items, model.n_items)
        items = None
    if items is not None:  # the ranker never reads title tokens (RANKER_KEYS): do not keep them per process
        items = dataclasses.replace(items, title_tokens=Jagged(np.zeros(0), np.zeros(items.n_items)))
    # The co-occurrence table is memory-mapped: a request reads the rows of its own history items only.
    catalog = None if items is None else CatalogFeatures(items, item_rows=model.item_rows,
                                                         neighbours=load_item_neighbours(folder))
    return OnlineFeatures(model.version_id, folder, items, catalog)


def _refresh(state: OnlineFeatures, tenant_id: int) -> None:
    """Swap in a newer snapshot if the pointer changed (the old mapping goes with its last reference)."""
    stamp = _stamp(state.pointer)
    if stamp is None or stamp == state._stamp:
        return
    try:
        pointer = read_snapshot_pointer(state.folder)
        snapshot = load_item_snapshot(state.folder)
    except (OSError, ValueError):  # a snapshot replaced while reading, or of another format: keep ours
        log.exception("cannot load the item snapshot of version %s (tenant %s)", state.version_id, tenant_id)
        return
    if snapshot is None or pointer is None:
        return
    if snapshot.n_items != (state.items.n_items if state.items is not None else snapshot.n_items):
        log.error("item snapshot of version %s has %d items", state.version_id, snapshot.n_items)
        return
    state.snapshot, state.built_at, state._stamp = snapshot, float(pointer.get("built_at", 0.0)), stamp


def online_features(tenant_id: int, model: ServedModel) -> OnlineFeatures:
    """The tenant's online features for `model` (its active version), loading or swapping as needed, and
    asking for a rebuild when the snapshot is missing or older than twice the refresh period."""
    state = _state.get(tenant_id)
    if state is None or state.version_id != model.version_id:
        with _locks_guard:
            lock = _locks.setdefault(tenant_id, threading.Lock())
        with lock:
            state = _state.get(tenant_id)
            if state is None or state.version_id != model.version_id:
                state = _load_version(tenant_id, model)
                _refresh(state, tenant_id)
                _state[tenant_id] = state
    else:
        _refresh(state, tenant_id)
    age = state.age_seconds()
    if state.items is not None and (age is None or age > 2 * settings.RECSVC_ONLINE_FEATURES_REFRESH_S):
        request_snapshot(tenant_id, model.version_id)
    return state


def clear() -> None:
    """Drop every tenant's online state (tests, and a process that must free memory)."""
    _state.clear()
    _weights.clear()
    _requested.clear()


# -- the customer, per request ---------------------------------------------------------------------


_WEIGHTS_TTL_S = 10.0
_weights: dict[int, tuple[float, dict[str, float]]] = {}


def cached_event_weights(tenant_id: int) -> dict[str, float]:
    """The tenant's event weights, kept in the process for a few seconds: a shared-cache round trip less per
    request; a changed weight reaches the customer features within _WEIGHTS_TTL_S (the item snapshot
    picks it up at its next build)."""
    now = time.monotonic()
    hit = _weights.get(tenant_id)
    if hit is None or hit[0] < now:
        hit = (now + _WEIGHTS_TTL_S, event_weights(tenant_id))
        _weights[tenant_id] = hit
    return hit[1]


def customer_activity(
    tenant_id: int, customer_pk: int | None, *, before: dt.datetime | None = None
) -> tuple[int, float]:
    """(number, weight sum) of the customer's preference events (before `before`, default all), weighted
    as `training.datasets.weighted_events` weighs them: one aggregate over the (tenant, customer, -ts)
    index, grouped by event type."""
    if customer_pk is None:
        return 0, 0.0
    events = Event.objects.for_tenant(tenant_id).filter(customer_id=customer_pk)
    if before is not None:
        events = events.filter(ts__lt=before)
    positive = Q(value__gt=0)
    rows = events.order_by().values("event_type").annotate(
        n=Count("id"), n_positive=Count("id", filter=positive), value_sum=Sum("value", filter=positive)
    ).values_list("event_type", "n", "n_positive", "value_sum")
    return activity_totals(tenant_id, rows)


def activity_totals(tenant_id: int, rows: Iterable[tuple]) -> tuple[int, float]:
    """customer_activity's (number, weight sum) from its per-type rows (event_type, n, n with a positive
    value, sum of positive values), however they were read."""
    weights = cached_event_weights(tenant_id)
    n, total = 0, 0.0
    for kind, count, n_positive, value_sum in rows:
        w = float(np.float32(weights.get(kind, 0.0)))
        if w <= 0:
            continue
        if kind == RATING:  # weight x rating, and unrated or zero ratings are not preferences
            n += n_positive
            total += w * float(value_sum or 0.0)
        else:
            n += count
            total += w * count
    return n, total


def active_versions() -> list[tuple[int, int]]:
    """(tenant id, active recommender version id) of every tenant: only to list them for the refresh
    beat; each build then runs in its tenant's context."""
    from tenants.context import dangerously_all_tenants

    with dangerously_all_tenants():
        return sorted(
            ModelVersion.objects.dangerously_all_tenants()
            .filter(status=ModelVersion.Status.ACTIVE, kind=ModelVersion.Kind.RECOMMENDER)
            .exclude(artifact_uri="")
            .values_list("tenant_id", "id")
        )
