#!/bin/sh
# First start of the compose PostgreSQL: the roles of ADR 0013 (deploy/local/services.sh's, with passwords)
# and the database owned by the owner role. recsvc_owner migrates, recsvc runs, recsvc_maintenance (no
# login) is the only role the all-tenants setting lifts row-level security for. None is a superuser.
set -eu
psql -v ON_ERROR_STOP=1 -U postgres \
  -v owner_pw="$RECSVC_OWNER_PASSWORD" -v app_pw="$RECSVC_DB_PASSWORD" <<'SQL'
CREATE ROLE recsvc_owner LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD :'owner_pw';
CREATE ROLE recsvc LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD :'app_pw';
CREATE ROLE recsvc_maintenance NOLOGIN NOSUPERUSER NOBYPASSRLS;
GRANT recsvc_maintenance TO recsvc, recsvc_owner;
CREATE DATABASE recsvc OWNER recsvc_owner;
SQL
