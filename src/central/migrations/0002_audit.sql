-- Central's audit trail (CONTRACT §5) and device credentials.

-- One row per request to /api/device-sync/request, written when it arrives and
-- finished with its outcome, so a request that dies midway still leaves a row.
CREATE TABLE sync_requests (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  mac text NOT NULL,
  device_id uuid NULL,
  manifest_id text NULL,
  requested_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz NULL,
  status text NOT NULL CHECK (status IN (
    'started', 'served', 'unchanged', 'invalid_input', 'unauthenticated',
    'unknown_device', 'disabled', 'error', 'aborted')),
  reason text NULL,
  error_code text NULL,
  duration_ms integer NULL,
  bytes_sent bigint NULL,
  payload_sha256 text NULL,
  remote_addr text NULL
);
CREATE INDEX sync_requests_requested_at_idx ON sync_requests (requested_at);
CREATE INDEX sync_requests_mac_requested_at_idx ON sync_requests (mac, requested_at);
CREATE INDEX sync_requests_manifest_id_idx ON sync_requests (manifest_id) WHERE manifest_id IS NOT NULL;

-- One row per manifest: who it is for and what it promises.
CREATE TABLE sync_manifest_headers (
  manifest_id text PRIMARY KEY,
  device_id uuid NOT NULL,
  mac macaddr NOT NULL,
  generated_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  schema_version integer NOT NULL,
  global_sha256 text NOT NULL,
  filter_desc jsonb NOT NULL
);
CREATE INDEX sync_manifest_headers_device_generated_idx ON sync_manifest_headers (device_id, generated_at);

-- One row per table of each manifest.
CREATE TABLE sync_manifests (
  manifest_id text NOT NULL REFERENCES sync_manifest_headers (manifest_id),
  generated_at timestamptz NOT NULL,
  table_name text NOT NULL,
  table_order smallint NOT NULL,
  row_count bigint NOT NULL,
  sha256 text NOT NULL,
  filter_desc jsonb NOT NULL,
  PRIMARY KEY (manifest_id, table_name)
);

-- At most one acknowledgement per manifest: a repeated ack is answered from here.
CREATE TABLE sync_acknowledgements (
  manifest_id text PRIMARY KEY REFERENCES sync_manifest_headers (manifest_id),
  mac macaddr NOT NULL,
  completed_at timestamptz NOT NULL DEFAULT now(),
  result text NOT NULL CHECK (result IN ('Success', 'Failed')),
  duration_ms integer NOT NULL,
  device_counts_json jsonb NOT NULL,
  device_hashes_json jsonb NOT NULL,
  error_text text NULL,
  payload_sha256 text NULL
);
CREATE INDEX sync_acknowledgements_mac_completed_idx ON sync_acknowledgements (mac, completed_at);

-- Device credentials live apart from `devices`, which is synced to the edge.
CREATE TABLE device_credentials (
  device_id uuid PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
  secret_hash text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  rotated_at timestamptz NOT NULL DEFAULT now()
);
