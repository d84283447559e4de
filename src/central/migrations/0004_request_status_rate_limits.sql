-- Requests refused for rate limits (429) or shed under load (503) are audited too.
ALTER TABLE sync_requests DROP CONSTRAINT sync_requests_status_check;
ALTER TABLE sync_requests ADD CONSTRAINT sync_requests_status_check CHECK (status IN (
  'started', 'served', 'unchanged', 'invalid_input', 'unauthenticated',
  'unknown_device', 'disabled', 'error', 'aborted', 'rate_limited', 'overloaded'));
