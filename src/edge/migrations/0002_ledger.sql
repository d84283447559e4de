-- The edge's local ledger (CONTRACT §5).

-- One row per sync attempt, written when it starts and finished with its outcome;
-- a row left 'running' by a killed process is closed as 'failed' by the next sync.
CREATE TABLE edge_sync_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  manifest_id text NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz NULL,
  status text NOT NULL CHECK (status IN ('running', 'success', 'unchanged', 'failed')),
  trigger text NOT NULL,
  duration_ms integer NULL,
  error_code text NULL,
  error_text text NULL,
  global_sha256 text NULL,
  rows_loaded bigint NULL,
  bytes_received bigint NULL,
  payload_sha256 text NULL,
  ack_status text NULL CHECK (ack_status IN ('sent', 'pending', 'failed', 'none'))
);
CREATE INDEX edge_sync_log_started_at_idx ON edge_sync_log (started_at);

-- What each successful sync loaded, per table.
CREATE TABLE edge_sync_tables (
  edge_sync_id bigint NOT NULL REFERENCES edge_sync_log (id),
  table_name text NOT NULL,
  table_order smallint NOT NULL,
  row_count bigint NOT NULL,
  sha256 text NOT NULL,
  PRIMARY KEY (edge_sync_id, table_name)
);

-- Small key/value state: last applied manifest, its global hash, times.
CREATE TABLE edge_sync_state (
  key text PRIMARY KEY,
  value text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Acknowledgements Central did not take yet; sent again before the next sync.
CREATE TABLE edge_pending_acks (
  manifest_id text PRIMARY KEY,
  body jsonb NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  last_error text NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
