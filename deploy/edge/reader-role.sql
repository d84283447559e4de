-- The role the Jetson's other services read the synced tables as: it can log in, read, and
-- write nothing. dbupdate-service grants it SELECT on the data tables (EDGE_READER_ROLE) after
-- every migration; the ledger stays private. Run by the edge stack's PostgreSQL at its first
-- start (initdb/); on an existing server, once as a superuser:
--   psql -v reader_password='…' -f reader-role.sql
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbupdate_reader') THEN
    CREATE ROLE dbupdate_reader LOGIN;
  END IF;
END $$;
ALTER ROLE dbupdate_reader PASSWORD :'reader_password';
ALTER ROLE dbupdate_reader SET default_transaction_read_only = on;
-- A runaway query of a local app cannot hold back the next sync's commit for long.
ALTER ROLE dbupdate_reader SET statement_timeout = '30s';
