-- Why a failed sync failed, finer than its error_code where code must tell cases apart
-- (src/edge/sync/errors.ts). A snapshot that broke foreign keys against tables the edge kept
-- is SNAPSHOT_INVALID like any malformed snapshot, yet casts doubt on the data held; the next
-- sync found it by the start of its error_text before. The rows written then get the reason.
ALTER TABLE edge_sync_log ADD COLUMN error_reason text NULL;
UPDATE edge_sync_log SET error_reason = 'KEPT_TABLES_BROKEN'
 WHERE status = 'failed'
   AND starts_with(error_text, 'snapshot breaks foreign keys against tables this edge kept');
