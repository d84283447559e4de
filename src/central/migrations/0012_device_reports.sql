-- What each edge last told Central about itself (docs/protocol.md, "Device reports"): its last
-- failure, even one that happened before it ever got a manifest (a certificate, a signature,
-- a setting), and the drift its scheduled verify found. One row a device, upserted by the
-- request that carried the report; no foreign key, as for the other audit tables (0011).
CREATE TABLE device_reports (
  device_id uuid PRIMARY KEY,
  mac macaddr NOT NULL,
  reported_at timestamptz NOT NULL DEFAULT now(),
  failure_code text NULL,
  failure_message text NULL,
  failure_at timestamptz NULL,
  drift_tables text[] NULL,
  drift_checked_at timestamptz NULL
);
