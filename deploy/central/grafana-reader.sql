-- The role Grafana's "Central audit" data source connects as: it reads, and writes nothing.
-- Run by the Central stack's PostgreSQL at its first start (initdb/); on an existing database,
-- run it once as the owner:  psql -v grafana_password='…' -f grafana-reader.sql
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana_reader') THEN
    CREATE ROLE grafana_reader LOGIN;
  END IF;
END $$;
ALTER ROLE grafana_reader PASSWORD :'grafana_password';
-- A dashboard query that runs away is stopped, whatever a viewer types.
ALTER ROLE grafana_reader SET statement_timeout = '30s';
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana_reader;
-- Tables the migrations create later, as the owner, are readable too.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
