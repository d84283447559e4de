/**
 * The operator's side of release control, one function per command, shared by the CLI
 * and the admin API: each changes the one release row and records who did it and when, in
 * one transaction. `status` is what both show.
 */
import { withTransaction, type Pool } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import {
  clearPaused,
  decideGuard,
  insertReleaseEvent,
  readRelease,
  recentReleaseEvents,
  setPaused,
  type ReleaseEventRow,
  type ReleaseRow,
} from './repo.ts';

export type ReleaseAction = 'pause' | 'resume' | 'approve' | 'reject';

export interface ReleaseChange {
  action: ReleaseAction;
  /** false when the release already was in that state (a second pause, a resume while running). */
  changed: boolean;
}

export async function changeRelease(
  pool: Pool,
  action: ReleaseAction,
  actor: string,
  reason: string | null,
): Promise<ReleaseChange> {
  return withTransaction(pool, 'BEGIN', async (tx) => {
    let changed: boolean;
    if (action === 'pause') changed = await setPaused(tx, actor, reason);
    else if (action === 'resume') changed = await clearPaused(tx);
    else {
      changed = await decideGuard(tx, action === 'approve' ? 'approved' : 'rejected', actor);
      if (!changed)
        throw new AppError(
          'NOTHING_HELD',
          `nothing to ${action}: the mass-change guard holds no change (dbupdate central release status)`,
        );
    }
    if (changed) await insertReleaseEvent(tx, actor, action, reason === null ? {} : { reason });
    return { action, changed };
  });
}

export interface ReleaseStatus {
  state: ReleaseRow;
  events: ReleaseEventRow[];
  /** Devices answered "held" in the last 15 minutes, in all and by reason. */
  heldDevices: number;
  heldByReason: Record<string, number>;
  /** Devices that took (acked) a change since the rollout began: the ones on its version. */
  updatedSinceRollout: number;
}

export async function releaseStatus(pool: Pool): Promise<ReleaseStatus> {
  const state = await readRelease(pool);
  const [events, held, updated] = await Promise.all([
    recentReleaseEvents(pool, 20),
    pool.query<{ reason: string | null; n: number }>(
      `SELECT reason, count(DISTINCT device_id)::int AS n FROM sync_requests
        WHERE status = 'held' AND requested_at > now() - interval '15 minutes'
        GROUP BY ROLLUP (reason)`,
    ),
    updatedSince(pool, state.rollout_started_at),
  ]);
  const total = held.rows.find((r) => r.reason === null)?.n ?? 0;
  const heldByReason = Object.fromEntries(
    held.rows.filter((r) => r.reason !== null).map((r) => [r.reason, r.n]),
  );
  return { state, events, heldDevices: total, heldByReason, updatedSinceRollout: updated };
}

async function updatedSince(pool: Pool, since: Date | null): Promise<number> {
  if (!since) return 0;
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(DISTINCT r.device_id)::int AS n
       FROM sync_requests r JOIN sync_acknowledgements a ON a.manifest_id = r.manifest_id
      WHERE r.status = 'served' AND r.requested_at >= $1 AND a.result = 'Success'`,
    [since],
  );
  return rows[0]!.n;
}
