"""The served-answers stream in Redis: its key, its consumer group and the fields of one entry.

One stream for all shops, so that one worker's XREADGROUP drains everything; every entry names its tenant.
An entry is flat strings (one XADD, no serialiser on the hot path but one json.dumps of the item ids):

    r recommendation id    t tenant id    e endpoint    v variant    m model version ('' for none)
    n reason    c customer id    s session id    i JSON list of product ids    p JSON propensities (absent: all 1)

The entry's id is the served time (Redis's clock, in milliseconds).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

from django.core.cache import cache

STREAM_NAME = "recs:answers"
GROUP = "store"


def stream_key() -> str:
    """The stream's key, with the cache's prefix (so a test run's Redis keys stay apart)."""
    return str(cache.make_key(STREAM_NAME))


@dataclass(frozen=True)
class ServedRecord:
    tenant_id: int
    recommendation_id: uuid.UUID
    served_at: dt.datetime
    endpoint: str
    variant: str
    model_version: int | None
    reason: str
    customer_id: str
    session_id: str
    items: tuple[str, ...]
    propensities: tuple[float, ...]


def encode(tenant_id: int, endpoint: str, answer: dict, customer_id: str | None, session_id: str | None,
           propensities: list[float] | None) -> dict[str, str | int]:
    """The entry of a stamped answer (items, recommendation_id, variant, model_version, reason)."""
    version = answer.get("model_version")
    fields: dict[str, str | int] = {
        "r": answer["recommendation_id"], "t": tenant_id, "e": endpoint, "v": answer["variant"],
        "m": "" if version is None else version, "n": answer.get("reason") or "", "c": customer_id or "",
        "s": session_id or "", "i": json.dumps([item["id"] for item in answer["items"]]),
    }
    if propensities is not None and any(p != 1.0 for p in propensities):
        fields["p"] = json.dumps([float(p) for p in propensities])
    return fields


def served_at_of(entry_id: str) -> dt.datetime:
    milliseconds = int(entry_id.split("-", 1)[0])
    return dt.datetime.fromtimestamp(milliseconds / 1000, dt.UTC)


def decode(entry_id: str, fields: dict[str, str]) -> ServedRecord:
    """The record of one entry (strings already decoded). Raises ValueError (or KeyError, TypeError) on an
    entry this code did not write."""
    items = tuple(str(i) for i in json.loads(fields["i"]))
    propensities = tuple(float(p) for p in json.loads(fields["p"])) if "p" in fields else (1.0,) * len(items)
    if len(propensities) != len(items):
        raise ValueError("propensities and items differ in length")
    version = fields.get("m", "")
    return ServedRecord(
        tenant_id=int(fields["t"]), recommendation_id=uuid.UUID(fields["r"]), served_at=served_at_of(entry_id),
        endpoint=fields["e"], variant=fields["v"], model_version=int(version) if version else None,
        reason=fields.get("n", ""), customer_id=fields.get("c", ""), session_id=fields.get("s", ""),
        items=items, propensities=propensities,
    )

