-- Release control for data (docs/releases.md): the fleet-wide freeze, the mass-change guard
-- and the staged rollout, one row that every Central replica reads; the scope versions each
-- location was at when the guard was last decided (approve or reject), so that a later change
-- is judged afresh; devices' cohorts; and who did what, and when.
CREATE TABLE release_state (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  paused_at timestamptz NULL,
  paused_by text NULL,
  pause_reason text NULL,
  guard text NOT NULL DEFAULT 'clear' CHECK (guard IN ('clear', 'tripped', 'approved', 'rejected')),
  guard_at timestamptz NULL,
  guard_by text NULL,
  -- What tripped it: the table, the device, the rows it held and the rows it would lose.
  guard_detail jsonb NULL,
  -- The staged rollout of what changed since the last one ended: canaries first, then waves.
  rollout_started_at timestamptz NULL,
  rollout_canaries_ok_at timestamptz NULL,
  rollout_ended_at timestamptz NULL,
  -- Failures are counted from the later of the rollout's start and the last resume.
  resumed_at timestamptz NULL,
  changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO release_state DEFAULT VALUES;

CREATE TABLE release_marks (
  location_id uuid PRIMARY KEY,
  version bigint NOT NULL
);

-- The scope versions each location was at when the last rollout began: a device whose location
-- changed since then holds a change that rollout does not cover, and starts the next one.
CREATE TABLE rollout_marks (
  location_id uuid PRIMARY KEY,
  version bigint NOT NULL
);

CREATE TABLE release_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor text NOT NULL,
  action text NOT NULL CHECK (action IN (
    'pause', 'resume', 'trip', 'approve', 'reject', 'rollout_start', 'canaries_ok', 'rollout_end')),
  details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX release_events_at_idx ON release_events (at);

-- A device's cohort: the canary cohort gets a rollout first; a cohort may have a sync window.
CREATE TABLE device_cohorts (
  device_id uuid PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
  cohort text NOT NULL CHECK (cohort ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  set_at timestamptz NOT NULL DEFAULT now(),
  set_by text NOT NULL
);
CREATE INDEX device_cohorts_cohort_idx ON device_cohorts (cohort);
ALTER TABLE device_admin_events DROP CONSTRAINT device_admin_events_action_check;
ALTER TABLE device_admin_events ADD CONSTRAINT device_admin_events_action_check
  CHECK (action IN ('create', 'enroll', 'disable', 'enable', 'revoke', 'cohort'));

-- A rollout counts drift reports since it began, every few seconds.
CREATE INDEX device_reports_drift_checked_at_idx ON device_reports (drift_checked_at)
  WHERE drift_checked_at IS NOT NULL;
-- and failed acks since it began (0009's index leads with the MAC).
CREATE INDEX sync_acknowledgements_failed_at_idx ON sync_acknowledgements (completed_at)
  WHERE result = 'Failed';

-- A held answer: the device was told, in a signed manifest, to keep what it holds.
ALTER TABLE sync_requests DROP CONSTRAINT sync_requests_status_check;
ALTER TABLE sync_requests ADD CONSTRAINT sync_requests_status_check CHECK (status IN (
  'started', 'served', 'unchanged', 'held', 'invalid_input', 'unauthenticated',
  'unknown_device', 'disabled', 'error', 'aborted', 'rate_limited', 'overloaded',
  'unsupported_schema'));

