/** The edge ledger: sync log, per-table results, state, pending acks. */
import type { Queryable } from '../../platform/db.ts';
import type { TableDigest } from '../../contract/canonical.ts';
import type { AckBody } from '../../contract/wire.ts';
import {
  stateFromRows,
  stateToRows,
  type AckOutcome,
  type SyncLogRow,
  type SyncOutcome,
  type SyncState,
  type SyncTrigger,
} from '../model.ts';

export interface SyncFinish {
  status: SyncOutcome;
  manifestId: string | null;
  durationMs: number;
  errorCode?: string | null;
  /** Finer than the code where code must tell cases apart (sync/errors.ts). */
  errorReason?: string | null;
  errorText?: string | null;
  /** Central held the change (release control): the manifest's `held.reason`. */
  heldReason?: string | null;
  /** Every table was emptied: a signed wipe, or the local data lifetime. */
  wiped?: boolean;
  globalSha256?: string | null;
  rowsLoaded?: number | null;
  bytesReceived?: number | null;
  payloadSha256?: string | null;
}

export async function insertSyncStart(db: Queryable, trigger: SyncTrigger): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO edge_sync_log (status, trigger) VALUES ('running', $1::text) RETURNING id`,
    [trigger],
  );
  return rows[0]!.id;
}

/** Rows left 'running' by a process that died; only called while holding the sync lock. */
export async function closeInterruptedSyncs(db: Queryable): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE edge_sync_log SET status = 'failed', error_code = 'SYNC_INTERRUPTED',
            error_text = 'the process stopped during this sync', completed_at = clock_timestamp()
      WHERE status = 'running'`,
  );
  return rowCount ?? 0;
}

/** `completed_at` is the statement's clock, just before COMMIT: now() would be the transaction's start. */
export async function finishSync(db: Queryable, id: string, f: SyncFinish): Promise<void> {
  await db.query(
    `UPDATE edge_sync_log
        SET status = $2::text, manifest_id = $3::text, duration_ms = $4::integer, error_code = $5::text,
            error_text = $6::text, global_sha256 = $7::text, rows_loaded = $8::bigint,
            bytes_received = $9::bigint, payload_sha256 = $10::text, error_reason = $11::text,
            held_reason = $12::text, wiped = $13::boolean, completed_at = clock_timestamp()
      WHERE id = $1::bigint`,
    [
      id,
      f.status,
      f.manifestId,
      f.durationMs,
      f.errorCode ?? null,
      f.errorText ?? null,
      f.globalSha256 ?? null,
      f.rowsLoaded ?? null,
      f.bytesReceived ?? null,
      f.payloadSha256 ?? null,
      f.errorReason ?? null,
      f.heldReason ?? null,
      f.wiped === true,
    ],
  );
}

export async function setAckStatus(db: Queryable, manifestId: string, status: AckOutcome): Promise<void> {
  await db.query('UPDATE edge_sync_log SET ack_status = $2::text WHERE manifest_id = $1::text', [
    manifestId,
    status,
  ]);
}

export async function insertSyncTables(
  db: Queryable,
  syncId: string,
  tables: readonly TableDigest[],
): Promise<void> {
  await db.query(
    `INSERT INTO edge_sync_tables (edge_sync_id, table_name, table_order, row_count, sha256)
     SELECT $1::bigint, t.name, t.ord, t.n, t.sha FROM unnest($2::text[], $3::bigint[], $4::text[])
       WITH ORDINALITY AS t(name, n, sha, ord)`,
    [syncId, tables.map((t) => t.name), tables.map((t) => t.rowCount), tables.map((t) => t.sha256)],
  );
}

/** The tables of the last sync that loaded data (what the local tables should hold). */
export async function lastAppliedTables(
  db: Queryable,
): Promise<{ syncId: string; manifestId: string; tables: TableDigest[] } | undefined> {
  const { rows } = await db.query<{
    id: string;
    manifest_id: string;
    name: TableDigest['name'];
    n: string;
    sha256: string;
  }>(
    `SELECT l.id, l.manifest_id, t.table_name AS name, t.row_count AS n, t.sha256
       FROM edge_sync_tables t JOIN edge_sync_log l ON l.id = t.edge_sync_id
      WHERE l.id = (SELECT max(edge_sync_id) FROM edge_sync_tables)
      ORDER BY t.table_order`,
  );
  if (rows.length === 0) return undefined;
  return {
    syncId: rows[0]!.id,
    manifestId: rows[0]!.manifest_id,
    tables: rows.map((r) => ({ name: r.name, rowCount: Number(r.n), sha256: r.sha256 })),
  };
}

/**
 * Whether a failure with one of `codes` (or one of `reasons`) came after the last sync that
 * loaded data: until a load succeeds again, what the edge holds is in doubt, however many
 * other failures follow.
 */
export async function failedSinceLastLoad(
  db: Queryable,
  beforeId: string,
  codes: readonly string[],
  reasons: readonly string[],
): Promise<boolean> {
  const { rows } = await db.query<{ doubt: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM edge_sync_log
        WHERE id < $1::bigint AND status = 'failed'
          AND (error_code = ANY($2::text[]) OR error_reason = ANY($3::text[]))
          AND id > coalesce((SELECT max(id) FROM edge_sync_log WHERE id < $1::bigint AND status = 'success'), 0)
     ) AS doubt`,
    [beforeId, codes, reasons],
  );
  return rows[0]!.doubt;
}

/** The last failed sync, whenever it was (a device report names it until another fails). */
export async function lastFailure(
  db: Queryable,
): Promise<{ code: string; message: string; at: Date } | undefined> {
  const { rows } = await db.query<{ code: string; message: string; at: Date }>(
    `SELECT error_code AS code, coalesce(error_text, '') AS message, coalesce(completed_at, started_at) AS at
       FROM edge_sync_log WHERE status = 'failed' AND error_code IS NOT NULL ORDER BY id DESC LIMIT 1`,
  );
  return rows[0];
}

/** A sync that did not run as a load: a scheduled verify's finding, recorded as its own ledger row. */
export async function recordVerify(db: Queryable, code: 'LOCAL_DRIFT', text: string): Promise<void> {
  await db.query(
    `INSERT INTO edge_sync_log (status, trigger, completed_at, duration_ms, error_code, error_text)
     VALUES ('failed', 'verify', now(), 0, $1::text, $2::text)`,
    [code, text],
  );
}

export async function getState(db: Queryable): Promise<SyncState> {
  const { rows } = await db.query<{ key: string; value: string }>('SELECT key, value FROM edge_sync_state');
  return stateFromRows(rows);
}

export async function setState(db: Queryable, state: SyncState): Promise<void> {
  const { keys, values } = stateToRows(state);
  await db.query(
    `INSERT INTO edge_sync_state (key, value)
     SELECT * FROM unnest($1::text[], $2::text[])
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
    [keys, values],
  );
}

export async function manifestApplied(db: Queryable, manifestId: string): Promise<boolean> {
  const { rows } = await db.query(
    `SELECT 1 FROM edge_sync_log WHERE manifest_id = $1::text AND status IN ('success', 'unchanged')`,
    [manifestId],
  );
  return rows.length > 0;
}

export async function recentSyncs(db: Queryable, limit: number): Promise<SyncLogRow[]> {
  const { rows } = await db.query<SyncLogRow>(
    `SELECT id, manifest_id, started_at, completed_at, status, trigger, duration_ms, error_code, error_text, held_reason,
            global_sha256, rows_loaded, ack_status
       FROM edge_sync_log ORDER BY id DESC LIMIT $1::int`,
    [limit],
  );
  return rows;
}

export async function savePendingAck(db: Queryable, ack: AckBody, error: string): Promise<void> {
  await db.query(
    `INSERT INTO edge_pending_acks (manifest_id, body, attempts, last_error) VALUES ($1::text, $2::jsonb, 1, $3::text)
     ON CONFLICT (manifest_id) DO UPDATE SET attempts = edge_pending_acks.attempts + 1, last_error = EXCLUDED.last_error`,
    [ack.manifestId, JSON.stringify(ack), error],
  );
}

export async function pendingAcks(db: Queryable, limit: number): Promise<AckBody[]> {
  const { rows } = await db.query<{ body: AckBody }>(
    'SELECT body FROM edge_pending_acks ORDER BY created_at LIMIT $1::int',
    [limit],
  );
  return rows.map((r) => r.body);
}

export async function countPendingAcks(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM edge_pending_acks');
  return rows[0]!.n;
}

export async function pendingAckAttempts(db: Queryable, manifestId: string): Promise<number> {
  const { rows } = await db.query<{ attempts: number }>(
    'SELECT attempts FROM edge_pending_acks WHERE manifest_id = $1::text',
    [manifestId],
  );
  return rows[0]?.attempts ?? 0;
}

export async function deletePendingAck(db: Queryable, manifestId: string): Promise<void> {
  await db.query('DELETE FROM edge_pending_acks WHERE manifest_id = $1::text', [manifestId]);
}

export async function tryAdvisoryLock(db: Queryable, key: number): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [key]);
  return rows[0]!.ok;
}

export async function advisoryUnlock(db: Queryable, key: number): Promise<void> {
  await db.query('SELECT pg_advisory_unlock($1::bigint)', [key]);
}

/** Failed syncs since the last one that succeeded or found the data unchanged. */
export async function failuresSinceConfirmed(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM edge_sync_log
      WHERE status = 'failed'
        AND id > coalesce((SELECT max(id) FROM edge_sync_log WHERE status IN ('success', 'unchanged')), 0)`,
  );
  return rows[0]!.n;
}
