-- The sweeper closes request rows a dead Central left 'started'; this keeps its look-up to
-- the few open rows instead of the whole audit trail.
CREATE INDEX sync_requests_started_idx ON sync_requests (requested_at) WHERE status = 'started';
