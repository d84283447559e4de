-- Data leaves a device that must not hold it (docs/releases.md, "Wipe"): `devices disable --wipe`
-- or `revoke --wipe` leaves a row here, and the device's next request, proved with the credential
-- it held when the wipe was asked (even one revoked since), is answered with a signed manifest of
-- empty tables marked `wipe`. `enable` and `enroll` take the row away.
CREATE TABLE device_wipes (
  device_id uuid PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
  requested_at timestamptz NOT NULL DEFAULT now(),
  requested_by text NOT NULL,
  -- The last wipe manifest sent: its acknowledgement tells that the device emptied its tables.
  last_manifest_id text NULL,
  last_sent_at timestamptz NULL
);
