-- Deltas for an edge whose user owns its tables but is no superuser (the README's role):
-- patching a parent table deletes and re-inserts key ranges that kept children point at,
-- which an immediate foreign key refuses. Deferrable keys (still checked at once unless a
-- load defers them) let such a load check every key at its end instead, without the
-- superuser's session_replication_role. New data-model keys must be made deferrable too
-- (test/edge-owner.test.ts checks every one).
DO $$
DECLARE
  k record;
BEGIN
  FOR k IN
    SELECT c.conrelid::regclass AS rel, c.conname
      FROM pg_constraint c
     WHERE c.contype = 'f' AND NOT c.condeferrable
       AND c.conrelid::regclass::text IN
           ('companies', 'locations', 'groups', 'location_groups', 'users', 'group_users', 'areas', 'devices')
  LOOP
    EXECUTE format('ALTER TABLE %s ALTER CONSTRAINT %I DEFERRABLE INITIALLY IMMEDIATE', k.rel, k.conname);
  END LOOP;
END
$$;
