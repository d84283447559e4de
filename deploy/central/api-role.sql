-- Least privilege for `dbupdate central serve`: it reads the data and the credentials, and writes
-- only the audit trail. Run it as the owner of the tables after `dbupdate central migrate` (and
-- again after an upgrade that adds a table), with the role created first, e.g.
--   CREATE ROLE dbupdate_api LOGIN PASSWORD '…';
-- `serve` migrates only a database that is behind its code; at the current migration it needs no
-- CREATE right, so migrations stay with the owner role (`central migrate`, the one-shot service).
-- `central enroll` writes device_credentials and `central prune-audit` deletes audit rows: run
-- those as the owner too.
GRANT SELECT ON companies, locations, groups, location_groups, users, group_users, areas, devices,
  data_versions, scope_versions, device_credentials, dbupdate_migrations TO dbupdate_api;
GRANT SELECT, INSERT, UPDATE ON sync_requests, sync_manifest_headers, sync_manifests,
  sync_acknowledgements, sync_piece_fetches, device_reports TO dbupdate_api;

-- The admin API's device lifecycle (POST /api/admin/devices…: create and enrol, disable,
-- enable, revoke) writes devices, their credentials and the record of who did it; the data
-- triggers of migrations 0005 and 0008 then bump the version rows as this role. Without these
-- grants those routes answer DATABASE_ACCESS_DENIED and the same operations stay with the CLI,
-- run as the owner.
GRANT INSERT, UPDATE ON devices, device_credentials TO dbupdate_api;
GRANT SELECT, INSERT ON device_admin_events TO dbupdate_api;
GRANT INSERT, UPDATE ON data_versions, scope_versions TO dbupdate_api;

-- Release control (migration 0013, docs/releases.md): every answer reads the release state;
-- the guard trips itself when a device's change is over its limit; the admin API pauses,
-- resumes, approves and rejects (marking each location's version), recording who did it.
GRANT SELECT, UPDATE ON release_state TO dbupdate_api;
GRANT SELECT, INSERT, DELETE ON release_marks, rollout_marks TO dbupdate_api;
GRANT SELECT, INSERT ON release_events TO dbupdate_api;
-- Cohorts (the canary cohort, sync windows) are set by the admin API, read by every answer.
GRANT SELECT, INSERT, UPDATE, DELETE ON device_cohorts TO dbupdate_api;

-- Wipes (migration 0014): the admin API asks for them with disable and revoke and takes them
-- away with enable and enrol; the answer that delivers one records its manifest.
GRANT SELECT, INSERT, UPDATE, DELETE ON device_wipes TO dbupdate_api;
