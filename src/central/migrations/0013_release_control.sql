-- Release control for data (docs/releases.md): the fleet-wide freeze and the mass-change
-- guard, one row that every Central replica reads; the scope versions each location was at
-- when the guard was last decided (approve or reject), so that a later change is judged
-- afresh; and who did what, and when.
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
  changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO release_state DEFAULT VALUES;

CREATE TABLE release_marks (
  location_id uuid PRIMARY KEY,
  version bigint NOT NULL
);

CREATE TABLE release_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor text NOT NULL,
  action text NOT NULL CHECK (action IN ('pause', 'resume', 'trip', 'approve', 'reject')),
  details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX release_events_at_idx ON release_events (at);

-- A held answer: the device was told, in a signed manifest, to keep what it holds.
ALTER TABLE sync_requests DROP CONSTRAINT sync_requests_status_check;
ALTER TABLE sync_requests ADD CONSTRAINT sync_requests_status_check CHECK (status IN (
  'started', 'served', 'unchanged', 'held', 'invalid_input', 'unauthenticated',
  'unknown_device', 'disabled', 'error', 'aborted', 'rate_limited', 'overloaded',
  'unsupported_schema'));

