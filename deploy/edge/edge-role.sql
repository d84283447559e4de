-- The role dbupdate-service connects as: it owns the edge database and the tables its migrations
-- make, and is no superuser. As their owner it loads a delta with the foreign keys deferred to the
-- end of the load (/status: loadMode "deferred"), so a one-user edit rewrites one piece, not
-- every table. Run by the edge stack's PostgreSQL at its first start (initdb/05-edge-role.sh).
-- On a stack made before this file, once (it also hands over the tables the service made then):
--   docker-compose -p dbupdate-edge exec -T edge-postgres \
--     psql -U dbupdate -d edge -v edge_password="$EDGE_DB_PASSWORD" -f /opt/dbupdate/edge-role.sql
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbupdate_edge') THEN
    CREATE ROLE dbupdate_edge LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
  END IF;
END $$;
ALTER ROLE dbupdate_edge PASSWORD :'edge_password';
ALTER DATABASE edge OWNER TO dbupdate_edge;
-- Since PostgreSQL 15 the public schema belongs to the database's owner; on older servers, say so.
GRANT CREATE, USAGE ON SCHEMA public TO dbupdate_edge;
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
              AND pg_get_userbyid(c.relowner) <> 'dbupdate_edge'
  LOOP
    EXECUTE format('ALTER TABLE public.%I OWNER TO dbupdate_edge', r.relname);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS fn FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> 'dbupdate_edge'
  LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO dbupdate_edge', r.fn);
  END LOOP;
END $$;
