#!/usr/bin/env bash
# PostgreSQL's first start (docker-entrypoint-initdb.d): the role dbupdate-service connects as,
# owner of the edge database and no superuser (edge-role.sql says why).
set -euo pipefail
psql -v ON_ERROR_STOP=1 -v edge_password="${EDGE_DB_PASSWORD:?set EDGE_DB_PASSWORD}" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f /opt/dbupdate/edge-role.sql
