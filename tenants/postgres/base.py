"""PostgreSQL backend that keeps the connection's `app.tenant_id` equal to the acting tenant, lazily.

Row-level security reads the connection setting `app.tenant_id` (tenants/rls.py). tenants.context used
to set it on entering and on leaving every tenant scope: two extra round trips per API request, more
than the single statement that stores an event, and the only database traffic of a cached answer. Here
every statement passes an execute wrapper that compares the scope's value (a contextvar) with the value
this connection last applied, and sends `set_config` first only when they differ. So the database sees
exactly the scope's setting whenever a statement runs (as before), a request that runs no statement
pays nothing, and consecutive requests of one shop on a pooled connection pay nothing either.

What this process remembers must never claim more than the server holds:
- `set_config(..., false)` inside a transaction is undone when the transaction (or the savepoint) rolls
  back, so any rollback forgets the remembered value, and so does every new connection;
- statements that name `app.tenant_id` themselves (hand-written maintenance) forget it too.
A statement that bypasses `cursor.execute` (psycopg's `cursor.copy`) must follow an executed statement
of the same scope; the project's only COPY writes a temporary table, which row-level security does not
guard, and the INSERT that reads it is executed normally.
"""

from __future__ import annotations

import select
from typing import Any

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus

from tenants.context import SETTING_NAME, current_tenant_setting, role_for

_UNKNOWN = None
# The role goes with the setting: all tenants only as the maintenance role, every other scope as the login
# role (tenants/rls.py). One statement, so it costs what the setting alone did.
_SET_SQL = f"SELECT set_config('{SETTING_NAME}', %s, false), set_config('role', %s, false)"


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.applied_tenant_setting: str | None = _UNKNOWN
        # Kept first, so the wrappers tests push and pop around it (connection.execute_wrapper) never
        # remove it.
        self.execute_wrappers.insert(0, self._with_tenant_setting)

    def _apply_tenant_setting(self, cursor: Any) -> None:
        """Send the scope's setting on `cursor` (psycopg's) if this connection does not hold it."""
        wanted = current_tenant_setting()
        if wanted != self.applied_tenant_setting:
            cursor.execute(_SET_SQL, [wanted, role_for(wanted)])
            self.applied_tenant_setting = wanted

    def _with_tenant_setting(self, execute, sql, params, many, context):
        # In a failed transaction every statement but a rollback fails anyway; the rollback that follows
        # (ROLLBACK TO SAVEPOINT is executed like any statement) must not be preceded by one that fails.
        if self.connection.info.transaction_status != TransactionStatus.INERROR:
            self._apply_tenant_setting(context["cursor"].cursor)
        try:
            return execute(sql, params, many, context)
        finally:
            if isinstance(sql, str) and SETTING_NAME in sql:
                self.applied_tenant_setting = _UNKNOWN

    def init_connection_state(self) -> None:
        self.applied_tenant_setting = _UNKNOWN
        super().init_connection_state()

    def _rollback(self) -> None:
        super()._rollback()
        self.applied_tenant_setting = _UNKNOWN

    def _savepoint_rollback(self, sid: str) -> None:
        super()._savepoint_rollback(sid)
        self.applied_tenant_setting = _UNKNOWN

    def is_usable(self) -> bool:
        """Django's health check (CONN_HEALTH_CHECKS), run before a request's first statement, without a
        round trip when the connection is idle.

        Django sends `SELECT 1`: a round trip and a statement for PostgreSQL on every request that touches
        the database, as much as the whole single-event insert once prepared. An idle connection is owed
        nothing by the server, so anything readable on its socket means the server spoke first, which it
        does only to end the session (the FATAL of a terminated backend or of a shutdown, then the close).
        A socket with nothing to read is as usable as `SELECT 1` would find it, short of a peer that
        vanished without closing, which TCP keepalives and the statement's own error then catch.
        """
        conn = self.connection
        if conn is None or conn.closed:
            return False
        if conn.info.transaction_status != TransactionStatus.IDLE:
            return super().is_usable()
        try:
            poller = select.poll()
            poller.register(conn.fileno(), select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False
