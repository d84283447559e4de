-- What Central's release control told a sync (docs/releases.md): `held_reason` for an answer
-- that held a change (nothing loaded, as for an unchanged one), `wiped` for one that emptied
-- every table, by a signed wipe or by the local data lifetime (DATA_LIFETIME_DAYS).
ALTER TABLE edge_sync_log
  ADD COLUMN held_reason text NULL CHECK (held_reason IN ('paused', 'guard', 'wave', 'window')),
  ADD COLUMN wiped boolean NOT NULL DEFAULT false;
