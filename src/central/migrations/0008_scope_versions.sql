-- A version per location, bumped in the same transaction as any change to a row that lies
-- in the scope of that location's devices (contract §2: every table but `devices` is scoped
-- by location; a device's own row is versioned by its xmin). An edited user thus wakes only
-- the locations whose groups hold that user, not the whole company.
--
-- Why it cannot miss a change: a row's scope can move (a user joins a group, a group is
-- linked to a location) while another transaction edits the row. Every trigger here runs
-- after the company-version trigger of 0005 (names sort after it), whose UPDATE of the
-- company's data_versions row holds that row's lock until commit; two writers in one
-- company therefore take turns, and the later one's lookup of affected locations (a fresh
-- snapshot under READ COMMITTED) sees the earlier one's links.
CREATE TABLE scope_versions (
  location_id uuid PRIMARY KEY,
  version bigint NOT NULL DEFAULT 1
);

CREATE FUNCTION dbupdate_bump_scopes(locations uuid[]) RETURNS void
LANGUAGE sql AS $$
  INSERT INTO scope_versions (location_id)
  SELECT DISTINCT l FROM unnest(locations) l WHERE l IS NOT NULL
  ORDER BY 1
  ON CONFLICT (location_id) DO UPDATE SET version = scope_versions.version + 1;
$$;

-- The locations whose scope holds a set of changed rows of `tbl`: `ids` are the rows' own
-- ids, `refs` the column the table is scoped through (location_id of location_groups and
-- areas, group_id of group_users).
CREATE FUNCTION dbupdate_scopes_of(tbl text, ids uuid[], refs uuid[]) RETURNS uuid[]
LANGUAGE sql STABLE AS $$
  SELECT ARRAY(
    SELECT l.id FROM locations l WHERE tbl = 'companies' AND l.company_id = ANY(ids)
    UNION SELECT unnest(ids) WHERE tbl = 'locations'
    UNION SELECT unnest(refs) WHERE tbl IN ('location_groups', 'areas')
    UNION SELECT lg.location_id FROM location_groups lg WHERE tbl = 'groups' AND lg.group_id = ANY(ids)
    UNION SELECT lg.location_id FROM location_groups lg WHERE tbl = 'group_users' AND lg.group_id = ANY(refs)
    UNION SELECT lg.location_id FROM group_users gu JOIN location_groups lg ON lg.group_id = gu.group_id
           WHERE tbl = 'users' AND gu.user_id = ANY(ids)
  );
$$;

-- TG_ARGV: the id column and the scoping column, each '' when the table has none to use.
-- plpgsql plans each statement on first use, so the branch naming a transition table the
-- trigger does not have (old_rows on INSERT, new_rows on DELETE) is never planned.
CREATE FUNCTION dbupdate_scopes_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  pick text := format('SELECT array_agg(%s), array_agg(%s) FROM ',
    CASE WHEN TG_ARGV[0] = '' THEN 'NULL::uuid' ELSE quote_ident(TG_ARGV[0]) END,
    CASE WHEN TG_ARGV[1] = '' THEN 'NULL::uuid' ELSE quote_ident(TG_ARGV[1]) END);
  ids uuid[];
  refs uuid[];
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    EXECUTE pick || 'new_rows' INTO ids, refs;
    PERFORM dbupdate_bump_scopes(dbupdate_scopes_of(TG_TABLE_NAME, ids, refs));
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    EXECUTE pick || 'old_rows' INTO ids, refs;
    PERFORM dbupdate_bump_scopes(dbupdate_scopes_of(TG_TABLE_NAME, ids, refs));
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION dbupdate_scopes_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE scope_versions SET version = version + 1;
  RETURN NULL;
END $$;

DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT * FROM (VALUES
      ('companies', 'id', ''), ('locations', 'id', ''), ('groups', 'id', ''), ('users', 'id', ''),
      ('location_groups', '', 'location_id'), ('areas', '', 'location_id'),
      ('group_users', '', 'group_id')) AS v(tbl, id, ref)
  LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger(%L, %L)', t.tbl || '_zscope_ins', t.tbl, t.id, t.ref);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger(%L, %L)', t.tbl || '_zscope_upd', t.tbl, t.id, t.ref);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_trigger(%L, %L)', t.tbl || '_zscope_del', t.tbl, t.id, t.ref);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I
                    FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_scopes_truncate()', t.tbl || '_zscope_trunc', t.tbl);
  END LOOP;
END $$;

-- Locations that exist already start at version 1.
INSERT INTO scope_versions (location_id) SELECT id FROM locations ON CONFLICT DO NOTHING;
