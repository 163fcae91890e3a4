#!/usr/bin/env bash
# Make sure PostgreSQL and Redis run on loopback, and that the service's database role exists.
# The role is deliberately not a superuser and has no BYPASSRLS: row-level security binds it.
set -euo pipefail
PGHOST=${PGHOST:-127.0.0.1}
if ! pg_isready -h "$PGHOST" -q 2>/dev/null; then
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do pg_isready -h "$PGHOST" -q && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  echo "starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
fi
psql -h "$PGHOST" -U postgres -v ON_ERROR_STOP=1 -qtA <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'recsvc') THEN
    CREATE ROLE recsvc LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS;
  END IF;
END $$;
SQL
if ! psql -h "$PGHOST" -U postgres -qtA -c "SELECT 1 FROM pg_database WHERE datname = 'recsvc'" | grep -q 1; then
  psql -h "$PGHOST" -U postgres -q -c "CREATE DATABASE recsvc OWNER recsvc"
fi
