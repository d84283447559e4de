-- Indexes for the dashboard's queries (repo/admin.ts), so that none of them reads a
-- whole audit table as it grows (test/audit-plans.test.ts checks the plans).

-- Acknowledgement results by hour.
CREATE INDEX sync_acknowledgements_completed_at_idx ON sync_acknowledgements (completed_at);
-- A device's last successful acknowledgement (devices without an ack in N hours).
CREATE INDEX sync_acknowledgements_success_idx ON sync_acknowledgements (mac, completed_at)
  WHERE result = 'Success';
-- A device's manifests in order (row deltas between consecutive manifests).
CREATE INDEX sync_manifest_headers_mac_generated_idx ON sync_manifest_headers (mac, generated_at);
-- A device's failed requests, which are few among many served ones.
CREATE INDEX sync_requests_errors_idx ON sync_requests (mac, requested_at) WHERE error_code IS NOT NULL;
