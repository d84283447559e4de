-- The audit tables' foreign keys to sync_manifest_headers cost one lookup per manifest table
-- row and per ack, and PostgreSQL plans that lookup once per connection: on a Central that
-- starts with few manifests it is a sequential scan, kept while the table grows, so a fleet
-- run spent 16 ms of every manifest insert re-reading every header (docs/scaling.md). The
-- rules they enforced hold by construction: a manifest's header and table rows are written by
-- one statement, an ack is stored only after its header was found, and prune-audit deletes a
-- manifest's ack, table rows and header together.
ALTER TABLE sync_manifests DROP CONSTRAINT sync_manifests_manifest_id_fkey;
ALTER TABLE sync_acknowledgements DROP CONSTRAINT sync_acknowledgements_manifest_id_fkey;
