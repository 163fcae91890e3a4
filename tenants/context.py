"""Which tenant the current code acts for, and the matching PostgreSQL row-level-security setting.

Application queries are scoped in Python (`TenantManager.for_tenant`); PostgreSQL policies on the same
tables are the second wall. They read the connection setting `app.tenant_id`: this module keeps the
acting tenant in a contextvar, and the database backend (tenants/postgres/base.py) sends it to the
connection before the next statement whenever the connection holds another value. Acting for all tenants
also switches the session to the maintenance role (`SET ROLE`), which the policies require along with the
setting (tenants/rls.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

ALL_TENANTS = "*"
SETTING_NAME = "app.tenant_id"
MAINTENANCE_ROLE = "recsvc_maintenance"  # the role tenants.rls.FUNCTIONS names


def role_for(setting: str) -> str:
    """The role a session acts as under `setting` ('none': the role it logged in as)."""
    return MAINTENANCE_ROLE if setting == ALL_TENANTS else "none"
_current: ContextVar[str] = ContextVar("recsvc_tenant", default="")


def current_tenant_setting() -> str:
    """The value `app.tenant_id` must hold for the code running now ('' outside any scope)."""
    return _current.get()


@contextlib.contextmanager
def _use(value: str) -> Iterator[None]:
    token = _current.set(value)
    try:
        yield
    finally:
        _current.reset(token)


def tenant_context(tenant_id: int) -> contextlib.AbstractContextManager[None]:
    """Act for one tenant: row-level security lets the connection see only its rows."""
    if not isinstance(tenant_id, int) or isinstance(tenant_id, bool):
        raise TypeError("tenant_context takes a tenant id (int)")
    return _use(str(tenant_id))


def dangerously_all_tenants() -> contextlib.AbstractContextManager[None]:
    """Lift the database wall for maintenance that must span tenants (never on a request path)."""
    return _use(ALL_TENANTS)
