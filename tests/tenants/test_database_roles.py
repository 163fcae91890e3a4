"""The deployment's database roles (ADR 0013), on a database migrated the way production is: by the owner
role `recsvc_owner`, then used by the runtime role `recsvc`.

The attacks: the runtime role switching row-level security off (it does not own the tables) and setting
the all-tenants bypass by itself (`app.tenant_id = '*'` lifts nothing unless the session acts as
`recsvc_maintenance`). The rest of the suite runs on a database its own role created and owns.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from psycopg import errors

OWNER, RUNTIME, MAINTENANCE = "recsvc_owner", "recsvc", "recsvc_maintenance"


def _connect(role: str, dbname: str) -> psycopg.Connection:
    db = settings.DATABASES["default"]
    return psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=role, dbname=dbname,
                           autocommit=True)


@pytest.fixture(scope="module")
def migrated_by_owner():
    """A scratch database owned by recsvc_owner, migrated by it with `manage.py migrate` (a subprocess, as
    a release step runs it)."""
    name = f"recsvc_roles_{uuid.uuid4().hex[:10]}"
    try:
        admin = _connect(OWNER, "postgres")
    except psycopg.OperationalError as exc:
        pytest.fail(f"the role {OWNER} is missing: run deploy/local/services.sh (make services): {exc}")
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{OWNER}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}",
        "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2,
        "RECSVC_FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    env.pop("REDIS_URL", None)
    try:
        done = subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], env=env,
                              cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        yield name
    finally:
        with _connect(OWNER, "postgres") as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _guarded_tables(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT tablename FROM pg_policies WHERE policyname = 'tenant_isolation' ORDER BY 1"
    ).fetchall()]


def test_the_owner_owns_every_table_and_the_runtime_role_only_reads_and_writes_rows(migrated_by_owner):
    with _connect(RUNTIME, migrated_by_owner) as conn:
        owners = dict(conn.execute(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall())
        assert "recs_product" in owners and set(owners.values()) == {OWNER}
        for role in (RUNTIME, MAINTENANCE):
            missing = [t for t in owners if not conn.execute(
                "SELECT has_table_privilege(%s, %s, 'SELECT, INSERT, UPDATE, DELETE')", [role, t]
            ).fetchone()[0]]
            assert missing == [], (role, missing)
            extra = [t for t in owners if conn.execute(
                "SELECT has_table_privilege(%s, %s, 'TRUNCATE, REFERENCES, TRIGGER')", [role, t]
            ).fetchone()[0]]
            assert extra == [], (role, extra)


@pytest.mark.parametrize("statement", [
    "ALTER TABLE {t} DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY",
    "DROP POLICY tenant_isolation ON {t}",
    "ALTER POLICY tenant_isolation ON {t} USING (true)",
    "CREATE POLICY everything ON {t} USING (true)",
    "ALTER TABLE {t} OWNER TO recsvc",
    "CREATE OR REPLACE FUNCTION recsvc_all_tenants() RETURNS boolean LANGUAGE sql AS $$ SELECT true $$",
    "ALTER ROLE recsvc BYPASSRLS",
    "GRANT recsvc_owner TO recsvc",
])
def test_the_runtime_role_cannot_switch_row_level_security_off(migrated_by_owner, statement):
    with _connect(RUNTIME, migrated_by_owner) as conn:
        for table in [*_guarded_tables(conn)[:3], "recs_product", "recs_event"]:
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement.format(t=table))
            if "{t}" not in statement:
                break
        assert conn.execute(
            "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE relname = 'recs_product'"
        ).fetchone()[0]


def _add_shop(conn, slug: str, products: int) -> int:
    tenant_id = conn.execute(
        "INSERT INTO tenants_tenant (name, slug, plan, is_active, created_at, stripe_subscription_id,"
        " subscription_status) VALUES (%s, %s, 'free', true, now(), '', '') RETURNING id", [slug, slug]
    ).fetchone()[0]
    conn.execute("SELECT set_config('app.tenant_id', %s, false)", [str(tenant_id)])
    for i in range(products):
        conn.execute(
            "INSERT INTO recs_product (tenant_id, external_id, title, description, category_path, brand,"
            " currency, available, tags, attributes, deleted, created_at, updated_at)"
            " VALUES (%s, %s, 't', '', '[]', '', '', true, '[]', '{}', false, now(), now())",
            [tenant_id, f"p{i}"],
        )
    return tenant_id


def test_the_all_tenants_setting_alone_reveals_nothing(migrated_by_owner):
    with _connect(RUNTIME, migrated_by_owner) as conn:
        suffix = uuid.uuid4().hex[:8]
        a = _add_shop(conn, f"a-{suffix}", 3)
        _add_shop(conn, f"b-{suffix}", 2)
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", [str(a)])
        assert conn.execute("SELECT count(*) FROM recs_product").fetchone()[0] == 3  # control: the tenant's own
        # The attack: the runtime role claims every tenant with the setting it may always change.
        conn.execute("SET app.tenant_id = '*'")
        assert conn.execute("SELECT count(*) FROM recs_product").fetchone()[0] == 0
        assert conn.execute("UPDATE recs_product SET title = 'pwned'").rowcount == 0
        # The maintenance role, entered explicitly (as tenants.context.dangerously_all_tenants does), sees both.
        conn.execute("SET ROLE recsvc_maintenance")
        assert conn.execute("SELECT count(*) FROM recs_product").fetchone()[0] >= 5
        conn.execute("RESET ROLE")
        assert conn.execute("SELECT count(*) FROM recs_product").fetchone()[0] == 0


def test_a_role_without_the_maintenance_grant_cannot_enter_it(migrated_by_owner):
    """A deployment may give its web processes a login without the grant: entering the role then fails."""
    with _connect(OWNER, migrated_by_owner) as conn:
        assert conn.execute("SELECT pg_has_role('recsvc', 'recsvc_maintenance', 'MEMBER')").fetchone()[0]
        assert not conn.execute(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'recsvc_maintenance'"
        ).fetchone()[0]
