-- Device lifecycle: who changed which device and when, credential revocation and a
-- rotation overlap, and what each device says it runs.

-- Every lifecycle operation of the CLI and the admin API, with its actor.
CREATE TABLE device_admin_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor text NOT NULL,
  action text NOT NULL CHECK (action IN ('create', 'enroll', 'disable', 'enable', 'revoke')),
  mac macaddr NOT NULL,
  device_id uuid NULL,
  details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX device_admin_events_mac_at_idx ON device_admin_events (mac, at);

-- A revoked credential stays on file (so the list can say "revoked") but verifies nothing.
-- During a rotation the credential before the last enrolment verifies until
-- previous_valid_until, so an operator can re-key a live device without a gap.
ALTER TABLE device_credentials
  ADD COLUMN revoked_at timestamptz NULL,
  ADD COLUMN previous_secret_hash text NULL,
  ADD COLUMN previous_valid_until timestamptz NULL;

-- What the edge reported with the request: its data-model schema version and software.
ALTER TABLE sync_requests
  ADD COLUMN schema_version integer NULL,
  ADD COLUMN software_version text NULL;

-- A request from an edge on a schema version Central no longer (or not yet) serves.
ALTER TABLE sync_requests DROP CONSTRAINT sync_requests_status_check;
ALTER TABLE sync_requests ADD CONSTRAINT sync_requests_status_check CHECK (status IN (
  'started', 'served', 'unchanged', 'invalid_input', 'unauthenticated',
  'unknown_device', 'disabled', 'error', 'aborted', 'rate_limited', 'overloaded',
  'unsupported_schema'));

-- A device's last failed acknowledgement (the device list's "last error"), few among many.
CREATE INDEX sync_acknowledgements_failed_idx ON sync_acknowledgements (mac, completed_at)
  WHERE result = 'Failed';
