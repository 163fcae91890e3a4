"""The product rows a serving process has read for candidates, kept until a write changes them.

Reading an uncached answer's few hundred candidate rows from PostgreSQL was the largest single piece of
its work: index probes across a catalog of a million rows, for PostgreSQL and for the worker that decodes
them. Popular products are candidates of many answers, so a process keeps the rows it read, and reads
only the missing ones. A row is kept only while no write has changed it: every write of product rows
publishes the changed pks after its commit (serving/catalog_changes.py), and before using what it kept
for a request, the process drops the rows changed since it last looked, up to the counter's current
value. So a stock change still applies to the next uncached request.

Without that counter (no Redis, or Redis down) the rows are read from PostgreSQL as before and nothing is
kept. Should a change's notice be lost (Redis failed just after a commit), a process's rows are dropped
anyway RECSVC_CANDIDATE_ROWS_MAX_AGE_S after it started keeping them. At most RECSVC_CANDIDATE_ROWS rows
are kept per process, oldest dropped first.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from serving import catalog_changes


@dataclass
class _Kept:
    """What a process keeps of one tenant: valid up to counter value `seq`, for these attribute keys."""

    seq: int
    attribute_keys: tuple[str, ...]
    epoch: int  # part of every row's key: a new epoch makes the tenant's rows unreachable at once (they
    # then age out of the limit with the oldest)
    started: float


_rows: dict[tuple[int, int, int], Sequence] = {}  # (tenant, epoch, pk) -> row, oldest first
_kept: dict[int, _Kept] = {}
_lock = threading.Lock()  # gthread workers: a sync of one tenant and the rows' insertion are atomic
_epochs = itertools.count(1)


def _synced(tenant_id: int, seq: int, attribute_keys: tuple[str, ...], clock: Callable[[], float]) -> _Kept:
    """The tenant's kept rows as of counter value `seq`: the rows changed since dropped, or all of them
    when the log cannot say which (or the attribute keys differ, or the rows are too old)."""
    kept = _kept.get(tenant_id)
    if (kept is not None and kept.attribute_keys == attribute_keys
            and clock() - kept.started < settings.RECSVC_CANDIDATE_ROWS_MAX_AGE_S):
        if kept.seq == seq:
            return kept
        changed = catalog_changes.changed_since(tenant_id, kept.seq, seq)
        if changed is not None:
            for pk in changed:
                _rows.pop((tenant_id, kept.epoch, pk), None)
            kept.seq = seq
            return kept
    kept = _Kept(seq, attribute_keys, next(_epochs), clock())
    _kept[tenant_id] = kept
    return kept


def _frozen(row: Sequence) -> tuple:
    """The row as tuples: a tuple of strings and numbers leaves the cyclic garbage collector's watch once
    a collection has seen it (a tuple of such tuples, the collection after), where lists stay, and a full
    collection walking a hundred thousand kept rows would stall the worker's requests for tens of
    milliseconds (as config/wsgi.py's gc.freeze says)."""
    return tuple([tuple(v) if type(v) is list else v for v in row])


def _trim(limit: int) -> None:
    """Drop the oldest tenth beyond the limit in one pass (deleting a dict's first key one at a time
    leaves holes its iteration then walks again and again)."""
    if len(_rows) > limit:
        for key in list(itertools.islice(_rows, len(_rows) - int(limit * 0.9))):
            del _rows[key]


def read_through(
    tenant_id: int, pks: np.ndarray, attribute_keys: tuple[str, ...], read: Callable[[np.ndarray], list],
    *, clock: Callable[[], float] = time.monotonic,
) -> list:
    """The current rows of these products (in no particular order; `read` gives rows whose first element
    is the pk, and is called for the pks not kept). `clock` (seconds) ages the kept rows."""
    limit = settings.RECSVC_CANDIDATE_ROWS
    seq = catalog_changes.current_seq(tenant_id) if limit > 0 else None
    if seq is None:
        return read(pks)
    with _lock:
        kept = _synced(tenant_id, seq, attribute_keys, clock)
    epoch, get = kept.epoch, _rows.get
    found, missing = [], []
    for pk in pks.tolist():
        row = get((tenant_id, epoch, pk))
        if row is None:
            missing.append(pk)
        else:
            found.append(row)
    if not missing:
        return found
    fresh = read(np.array(missing, dtype=np.int64))
    with _lock:
        if _kept.get(tenant_id) is kept and kept.seq == seq:  # no later change was seen meanwhile
            for row in fresh:
                _rows[(tenant_id, epoch, row[0])] = _frozen(row)
            _trim(limit)
    return found + fresh


def clear() -> None:
    """Forget every kept row (tests; a process that must not trust what it read)."""
    with _lock:
        _rows.clear()
        _kept.clear()
