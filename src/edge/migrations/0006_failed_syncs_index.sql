-- Every sync request asks for the last failed sync (its device report, services/device-report.ts).
-- A healthy edge has few failures among a ledger that grows by a row every interval: without
-- this index that question read the whole ledger backwards, at every sync.
CREATE INDEX edge_sync_log_failed_idx ON edge_sync_log (id) WHERE status = 'failed' AND error_code IS NOT NULL;
