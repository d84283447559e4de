-- A group linked to a location, or a user in a group, must belong to the same
-- company: otherwise a device's snapshot would hold rows whose parents it never
-- receives, and every edge would fail its foreign keys. Central refuses such links.
-- Statement-level triggers with transition tables keep bulk loads set-based.
CREATE FUNCTION dbupdate_check_location_group_company() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE bad record;
BEGIN
  SELECT n.location_id, n.group_id INTO bad
  FROM new_rows n
  JOIN locations l ON l.id = n.location_id
  JOIN groups g ON g.id = n.group_id
  WHERE l.company_id <> g.company_id
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'location % and group % belong to different companies', bad.location_id, bad.group_id
      USING ERRCODE = '23514';
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER location_groups_same_company_ins
  AFTER INSERT ON location_groups REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_check_location_group_company();
CREATE TRIGGER location_groups_same_company_upd
  AFTER UPDATE ON location_groups REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_check_location_group_company();

CREATE FUNCTION dbupdate_check_group_user_company() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE bad record;
BEGIN
  SELECT n.group_id, n.user_id INTO bad
  FROM new_rows n
  JOIN groups g ON g.id = n.group_id
  JOIN users u ON u.id = n.user_id
  WHERE g.company_id <> u.company_id
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'group % and user % belong to different companies', bad.group_id, bad.user_id
      USING ERRCODE = '23514';
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER group_users_same_company_ins
  AFTER INSERT ON group_users REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_check_group_user_company();
CREATE TRIGGER group_users_same_company_upd
  AFTER UPDATE ON group_users REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION dbupdate_check_group_user_company();
