-- A version per company, bumped in the same transaction as any change to a row of
-- that company's data (every row of the eight tables belongs to exactly one company).
-- A device's scope lies within one company, so an unchanged company version means an
-- unchanged scope: Central can answer "unchanged" from a cache without reading rows.
CREATE TABLE data_versions (
  company_id uuid PRIMARY KEY,
  version bigint NOT NULL DEFAULT 1
);

CREATE FUNCTION dbupdate_bump_versions(companies uuid[]) RETURNS void
LANGUAGE sql AS $$
  INSERT INTO data_versions (company_id)
  SELECT DISTINCT c FROM unnest(companies) c WHERE c IS NOT NULL
  ON CONFLICT (company_id) DO UPDATE SET version = data_versions.version + 1;
$$;

-- Statement-level, over the transition tables: one bump per company and statement.
-- plpgsql plans each statement on first use, so a branch naming a transition table the
-- trigger does not have (old_rows on INSERT, new_rows on DELETE) is never planned.
CREATE FUNCTION dbupdate_versions_companies() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT id FROM new_rows));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT id FROM old_rows));
  ELSE
    PERFORM dbupdate_bump_versions(ARRAY(SELECT id FROM new_rows UNION SELECT id FROM old_rows));
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION dbupdate_versions_by_company() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT company_id FROM new_rows));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT company_id FROM old_rows));
  ELSE
    PERFORM dbupdate_bump_versions(ARRAY(SELECT company_id FROM new_rows UNION SELECT company_id FROM old_rows));
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION dbupdate_versions_by_location() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT l.company_id FROM locations l WHERE l.id IN (SELECT location_id FROM new_rows)));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT l.company_id FROM locations l WHERE l.id IN (SELECT location_id FROM old_rows)));
  ELSE
    PERFORM dbupdate_bump_versions(ARRAY(SELECT l.company_id FROM locations l WHERE l.id IN (SELECT location_id FROM new_rows) UNION SELECT l.company_id FROM locations l WHERE l.id IN (SELECT location_id FROM old_rows)));
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION dbupdate_versions_by_group() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT g.company_id FROM groups g WHERE g.id IN (SELECT group_id FROM new_rows)));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM dbupdate_bump_versions(ARRAY(SELECT g.company_id FROM groups g WHERE g.id IN (SELECT group_id FROM old_rows)));
  ELSE
    PERFORM dbupdate_bump_versions(ARRAY(SELECT g.company_id FROM groups g WHERE g.id IN (SELECT group_id FROM new_rows) UNION SELECT g.company_id FROM groups g WHERE g.id IN (SELECT group_id FROM old_rows)));
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION dbupdate_versions_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE data_versions SET version = version + 1;
  RETURN NULL;
END $$;

DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT * FROM (VALUES
      ('companies', 'dbupdate_versions_companies'),
      ('locations', 'dbupdate_versions_by_company'),
      ('groups', 'dbupdate_versions_by_company'),
      ('users', 'dbupdate_versions_by_company'),
      ('location_groups', 'dbupdate_versions_by_location'),
      ('areas', 'dbupdate_versions_by_location'),
      ('devices', 'dbupdate_versions_by_location'),
      ('group_users', 'dbupdate_versions_by_group')) AS v(tbl, fn)
  LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION %I()', t.tbl || '_versions_ins', t.tbl, t.fn);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION %I()', t.tbl || '_versions_upd', t.tbl, t.fn);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION %I()', t.tbl || '_versions_del', t.tbl, t.fn);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I
                    FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_versions_truncate()', t.tbl || '_versions_trunc', t.tbl);
  END LOOP;
END $$;

-- Companies that exist already start at version 1.
INSERT INTO data_versions (company_id) SELECT id FROM companies ON CONFLICT DO NOTHING;
