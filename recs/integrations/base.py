"""What a topic handler is given: the tenant (whose context is entered), the connection and the delivery."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recs.models import IntegrationConnection


@dataclass(frozen=True)
class Delivery:
    tenant_id: int
    connection: IntegrationConnection
    delivery_pk: int
    topic: str
    triggered_at: dt.datetime | None


# A handler maps one payload into the catalog/events and returns a small JSON summary of what it did.
Handler = Callable[[Delivery, dict[str, Any]], dict[str, Any]]


class Ignored(Exception):
    """The delivery is authentic but carries nothing to store (why is the message, kept on the delivery)."""
