/** The release state (`release_state`, `release_marks`, `release_events`, migration 0013). */
import type { TableDigest } from '../../contract/canonical.ts';
import type { TableName } from '../../contract/tables.ts';
import type { Queryable } from '../../platform/db.ts';
import type { GuardState } from './rule.ts';

export interface ReleaseRow {
  paused_at: Date | null;
  paused_by: string | null;
  pause_reason: string | null;
  guard: GuardState;
  guard_at: Date | null;
  guard_by: string | null;
  guard_detail: Record<string, unknown> | null;
  rollout_started_at: Date | null;
  rollout_canaries_ok_at: Date | null;
  rollout_ended_at: Date | null;
  resumed_at: Date | null;
  changed_at: Date;
}

export async function readRelease(db: Queryable): Promise<ReleaseRow> {
  const { rows } = await db.query<ReleaseRow>(
    `SELECT paused_at, paused_by, pause_reason, guard, guard_at, guard_by, guard_detail, changed_at,
            rollout_started_at, rollout_canaries_ok_at, rollout_ended_at, resumed_at
       FROM release_state`,
  );
  return rows[0]!;
}

/** Pauses, unless paused already (then the first pause stands); true when this call paused. */
export async function setPaused(db: Queryable, by: string, reason: string | null): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE release_state SET paused_at = now(), paused_by = $1, pause_reason = $2, changed_at = now()
      WHERE paused_at IS NULL`,
    [by, reason],
  );
  return rowCount === 1;
}

export async function clearPaused(db: Queryable): Promise<boolean> {
  const { rowCount } = await db.query(
    // A rollout's waves stood still while paused: they open as far apart after the resume.
    `UPDATE release_state SET paused_at = NULL, paused_by = NULL, pause_reason = NULL, resumed_at = now(),
            rollout_canaries_ok_at = CASE WHEN rollout_ended_at IS NULL AND rollout_canaries_ok_at IS NOT NULL
                                          THEN rollout_canaries_ok_at + greatest(now() - paused_at, interval '0')
                                          ELSE rollout_canaries_ok_at END,
            changed_at = now()
      WHERE paused_at IS NOT NULL`,
  );
  return rowCount === 1;
}

/**
 * Trips the guard unless it is tripped already (one write however many devices find the
 * change), and marks the version each location is at: what approve lets go and reject keeps
 * back is what was there when it tripped; a later change is judged afresh. The caller owns
 * the transaction.
 */
export async function tripGuard(db: Queryable, detail: Record<string, unknown>): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE release_state SET guard = 'tripped', guard_at = now(), guard_by = NULL, guard_detail = $1,
            changed_at = now()
      WHERE guard <> 'tripped'`,
    [JSON.stringify(detail)],
  );
  if (rowCount !== 1) return false;
  await markVersions(db, 'release_marks');
  return true;
}

/** Approves or rejects what the guard holds (as marked when it tripped); false when it holds nothing. */
export async function decideGuard(
  db: Queryable,
  decision: 'approved' | 'rejected',
  by: string,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE release_state SET guard = $1, guard_at = now(), guard_by = $2, changed_at = now()
      WHERE guard = 'tripped'`,
    [decision, by],
  );
  return rowCount === 1;
}

/** The version each location is at now, kept in `table` in place of what it held. */
async function markVersions(db: Queryable, table: 'release_marks' | 'rollout_marks'): Promise<void> {
  await db.query(`DELETE FROM ${table}`);
  await db.query(
    `INSERT INTO ${table} (location_id, version) SELECT location_id, version FROM scope_versions`,
  );
}

export async function readMarks(
  db: Queryable,
  table: 'release_marks' | 'rollout_marks' = 'release_marks',
): Promise<Map<string, number>> {
  const { rows } = await db.query<{ location_id: string; version: string }>(
    `SELECT location_id, version FROM ${table}`,
  );
  return new Map(rows.map((r) => [r.location_id, Number(r.version)]));
}

export async function insertReleaseEvent(
  db: Queryable,
  actor: string,
  action:
    'pause' | 'resume' | 'trip' | 'approve' | 'reject' | 'rollout_start' | 'canaries_ok' | 'rollout_end',
  details: Record<string, unknown>,
): Promise<void> {
  await db.query('INSERT INTO release_events (actor, action, details) VALUES ($1, $2, $3)', [
    actor,
    action,
    JSON.stringify(details),
  ]);
}

export interface ReleaseEventRow {
  at: Date;
  actor: string;
  action: string;
  details: Record<string, unknown>;
}

export async function recentReleaseEvents(db: Queryable, limit: number): Promise<ReleaseEventRow[]> {
  const { rows } = await db.query<ReleaseEventRow>(
    'SELECT at, actor, action, details FROM release_events ORDER BY id DESC LIMIT $1',
    [limit],
  );
  return rows;
}

/**
 * The tables a device holds, as the manifest it was last answered with at that global hash
 * told them (the device's newest such manifest; undefined when the audit no longer has one).
 */
export async function heldTables(
  db: Queryable,
  deviceId: string,
  globalSha256: string,
): Promise<TableDigest[] | undefined> {
  const { rows } = await db.query<{ name: TableName; row_count: string; sha256: string }>(
    `SELECT m.table_name AS name, m.row_count, m.sha256
       FROM sync_manifests m
      WHERE m.manifest_id = (SELECT manifest_id FROM sync_manifest_headers
                              WHERE device_id = $1::uuid AND global_sha256 = $2::text
                              ORDER BY generated_at DESC LIMIT 1)
      ORDER BY m.table_order`,
    [deviceId, globalSha256],
  );
  if (rows.length === 0) return undefined;
  return rows.map((r) => ({ name: r.name, rowCount: Number(r.row_count), sha256: r.sha256 }));
}

/**
 * Starts a rollout unless one is running, and marks the version each location is at: one
 * write however many answers find the change. The caller owns the transaction.
 */
export async function startRollout(db: Queryable): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE release_state SET rollout_started_at = now(), rollout_canaries_ok_at = NULL,
            rollout_ended_at = NULL, changed_at = now()
      WHERE rollout_started_at IS NULL OR rollout_ended_at IS NOT NULL`,
  );
  if (rowCount !== 1) return false;
  await markVersions(db, 'rollout_marks');
  return true;
}

export async function advanceRollout(db: Queryable, step: 'canaries-ok' | 'end'): Promise<boolean> {
  const column = step === 'end' ? 'rollout_ended_at' : 'rollout_canaries_ok_at';
  const { rowCount } = await db.query(
    `UPDATE release_state SET ${column} = now(), changed_at = now()
      WHERE rollout_started_at IS NOT NULL AND rollout_ended_at IS NULL AND ${column} IS NULL`,
  );
  return rowCount === 1;
}

/**
 * A running rollout's progress: canaries current since it began (acked Success for an answer
 * that changed their data or found it unchanged: a canary whose scope the change does not
 * touch is current too), the canaries there are, and the devices that took a change since
 * `failuresFrom` and failed it (their failed acks by the code in front of the text) or report
 * drift. A device asked to wipe is not counted: its acks are not the rollout's (and may come
 * with a revoked credential). Every read starts from an index: the canaries (few), failed
 * acks by time, reports by time. `canariesDone`: the canary count is not needed any more.
 */
export async function rolloutCounts(
  db: Queryable,
  startedAt: Date,
  failuresFrom: Date,
  canaryCohort: string,
  canariesDone: boolean,
): Promise<{
  canariesAcked: number;
  canaries: number;
  failures: { code: string; devices: number }[];
}> {
  const [acked, failed] = await Promise.all([
    canariesDone
      ? Promise.resolve({ rows: [{ acked: 0, canaries: 0 }] })
      : db.query<{ acked: number; canaries: number }>(
          `SELECT count(*) FILTER (WHERE EXISTS (
                    SELECT 1 FROM sync_manifest_headers h
                      JOIN sync_acknowledgements a ON a.manifest_id = h.manifest_id AND a.result = 'Success'
                      JOIN sync_requests r ON r.manifest_id = h.manifest_id AND r.status IN ('served', 'unchanged')
                     WHERE h.device_id = c.device_id AND h.generated_at >= $1))::int AS acked,
                  count(*)::int AS canaries
             FROM device_cohorts c JOIN devices d ON d.id = c.device_id
            WHERE c.cohort = $2 AND d.is_enabled`,
          [startedAt, canaryCohort],
        ),
    db.query<{ code: string; devices: number }>(
      `SELECT coalesce(substring(a.error_text FROM '^([A-Z][A-Z0-9_]{0,63}):'), 'OTHER') AS code,
              count(DISTINCT h.device_id)::int AS devices
         FROM sync_acknowledgements a
         JOIN sync_manifest_headers h ON h.manifest_id = a.manifest_id
         JOIN sync_requests r ON r.manifest_id = a.manifest_id AND r.status = 'served'
        WHERE a.completed_at >= $1 AND a.result = 'Failed' AND h.generated_at >= $1
          AND NOT EXISTS (SELECT 1 FROM device_wipes w WHERE w.device_id = h.device_id)
        GROUP BY 1
       UNION ALL
       SELECT 'LOCAL_DRIFT', count(*)::int FROM device_reports rep
        WHERE rep.drift_checked_at >= $1 AND cardinality(rep.drift_tables) > 0
          AND NOT EXISTS (SELECT 1 FROM device_wipes w WHERE w.device_id = rep.device_id)
       HAVING count(*) > 0
        ORDER BY 2 DESC, 1`,
      [failuresFrom],
    ),
  ]);
  return {
    canariesAcked: acked.rows[0]!.acked,
    canaries: acked.rows[0]!.canaries,
    failures: failed.rows,
  };
}
