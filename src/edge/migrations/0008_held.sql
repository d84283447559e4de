-- A sync that Central's release control answered "held" (docs/releases.md): nothing was
-- loaded, as for an unchanged answer, and the ledger says why the change did not come.
ALTER TABLE edge_sync_log
  ADD COLUMN held_reason text NULL CHECK (held_reason IN ('paused', 'guard'));
