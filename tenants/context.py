"""Which tenant the current code acts for, and the matching PostgreSQL row-level-security setting.

Application queries are scoped in Python (`TenantManager.for_tenant`); PostgreSQL policies on the same
tables are the second wall. They read the connection setting `app.tenant_id`, which this module sets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from django.db import connections

ALL_TENANTS = "*"
_current: ContextVar[str] = ContextVar("recsvc_tenant", default="")


def _set_db_tenant(value: str, using: str = "default") -> None:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.tenant_id', %s, false)", [value])


def current_tenant_setting() -> str:
    return _current.get()


@contextlib.contextmanager
def _use(value: str) -> Iterator[None]:
    previous = _current.get()
    token = _current.set(value)
    _set_db_tenant(value)
    try:
        yield
    finally:
        _current.reset(token)
        _set_db_tenant(previous)


def tenant_context(tenant_id: int) -> contextlib.AbstractContextManager[None]:
    """Act for one tenant: row-level security lets the connection see only its rows."""
    if not isinstance(tenant_id, int) or isinstance(tenant_id, bool):
        raise TypeError("tenant_context takes a tenant id (int)")
    return _use(str(tenant_id))


def dangerously_all_tenants() -> contextlib.AbstractContextManager[None]:
    """Lift the database wall for maintenance that must span tenants (never on a request path)."""
    return _use(ALL_TENANTS)
