#!/usr/bin/env bash
# PostgreSQL's first start (docker-entrypoint-initdb.d): the read-only role of local apps.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -v reader_password="${EDGE_READER_PASSWORD:?set EDGE_READER_PASSWORD}" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f /opt/dbupdate/reader-role.sql
