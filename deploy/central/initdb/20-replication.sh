#!/usr/bin/env bash
# PostgreSQL's first start (docker-entrypoint-initdb.d): a role that may stream the WAL to the
# read replica of compose.scale.yaml. Without REPLICATION_PASSWORD (one Central, no replica)
# it does nothing.
set -euo pipefail
if [ -z "${REPLICATION_PASSWORD:-}" ]; then
  exit 0
fi
psql -v ON_ERROR_STOP=1 -v password="$REPLICATION_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
SQL
echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
