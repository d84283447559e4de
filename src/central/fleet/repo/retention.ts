/** Deleting old audit rows in small batches, oldest first, each batch in the caller's transaction. */
import type { Queryable } from '../../../platform/db.ts';

export interface ManifestBatch {
  manifests: number;
  acks: number;
  tableRows: number;
}

/**
 * Up to `batch` manifests generated before `cutoff`, with their table rows and acks.
 * The foreign keys are checked at the end of the statement, when the children are gone.
 */
export async function deleteOldManifests(db: Queryable, cutoff: Date, batch: number): Promise<ManifestBatch> {
  const { rows } = await db.query<ManifestBatch>(
    `WITH doomed AS (
       SELECT manifest_id FROM sync_manifest_headers
        WHERE generated_at < $1::timestamptz ORDER BY generated_at LIMIT $2::int
        FOR UPDATE SKIP LOCKED),
     a AS (DELETE FROM sync_acknowledgements WHERE manifest_id IN (SELECT manifest_id FROM doomed) RETURNING 1),
     m AS (DELETE FROM sync_manifests WHERE manifest_id IN (SELECT manifest_id FROM doomed) RETURNING 1),
     h AS (DELETE FROM sync_manifest_headers WHERE manifest_id IN (SELECT manifest_id FROM doomed) RETURNING 1)
     SELECT (SELECT count(*) FROM h)::int AS manifests, (SELECT count(*) FROM a)::int AS acks,
            (SELECT count(*) FROM m)::int AS "tableRows"`,
    [cutoff.toISOString(), batch],
  );
  return rows[0]!;
}

/** The audit tables whose rows are pruned by their own id and `requested_at`, one at a time. */
export type RequestLog = 'sync_requests' | 'sync_piece_fetches';

/** Up to `batch` rows of `table` (requests or piece fetches) that arrived before `cutoff`. */
export async function deleteOldRows(
  db: Queryable,
  table: RequestLog,
  cutoff: Date,
  batch: number,
): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM ${table} WHERE id IN (
       SELECT id FROM ${table} WHERE requested_at < $1::timestamptz ORDER BY requested_at LIMIT $2::int)`,
    [cutoff.toISOString(), batch],
  );
  return rowCount ?? 0;
}
