#!/usr/bin/env bash
# Make sure PostgreSQL and Redis run on loopback, and that the service's database roles exist:
#   recsvc_owner        owns the database and its tables, runs the migrations
#   recsvc              what the service connects as: rows only (granted by the migrations)
#   recsvc_maintenance  NOLOGIN; the all-tenants bypass needs it (SET ROLE), granted to recsvc and the owner
# None is a superuser or has BYPASSRLS: row-level security binds them all (docs/adr/0013-*.md).
# recsvc keeps CREATEDB for the test suite, which creates its databases as the role it connects as.
# REDIS_PASSWORD, when set, starts Redis with it required (AUTH); give it in REDIS_URL (redis://:pw@host).
set -euo pipefail
PGHOST=${PGHOST:-127.0.0.1}
if ! pg_isready -h "$PGHOST" -q 2>/dev/null; then
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do pg_isready -h "$PGHOST" -q && break; sleep 1; done
fi
redis_auth=()
if [ -n "${REDIS_PASSWORD:-}" ]; then redis_auth=(--requirepass "$REDIS_PASSWORD"); fi
if ! REDISCLI_AUTH="${REDIS_PASSWORD:-}" redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  echo "starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log "${redis_auth[@]}"
  for _ in $(seq 1 30); do REDISCLI_AUTH="${REDIS_PASSWORD:-}" redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
fi
psql -h "$PGHOST" -U postgres -v ON_ERROR_STOP=1 -qtA <<'SQL'
SET client_min_messages = warning;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'recsvc') THEN
    CREATE ROLE recsvc LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'recsvc_owner') THEN
    CREATE ROLE recsvc_owner LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'recsvc_maintenance') THEN
    CREATE ROLE recsvc_maintenance NOLOGIN NOSUPERUSER NOBYPASSRLS;
  END IF;
END $$;
GRANT recsvc_maintenance TO recsvc, recsvc_owner;
SQL
if ! psql -h "$PGHOST" -U postgres -qtA -c "SELECT 1 FROM pg_database WHERE datname = 'recsvc'" | grep -q 1; then
  psql -h "$PGHOST" -U postgres -q -c "CREATE DATABASE recsvc OWNER recsvc_owner"
fi
