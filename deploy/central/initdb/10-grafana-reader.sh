#!/usr/bin/env bash
# PostgreSQL's first start (docker-entrypoint-initdb.d): the read-only role for Grafana.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -v grafana_password="${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD}" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f /opt/dbupdate/grafana-reader.sql
