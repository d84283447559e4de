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
  /** Devices answered "held" in the last 15 minutes, and the devices Central knows. */
  heldDevices: number;
}

export async function releaseStatus(pool: Pool): Promise<ReleaseStatus> {
  const [state, events, held] = await Promise.all([
    readRelease(pool),
    recentReleaseEvents(pool, 20),
    pool.query<{ n: number }>(
      `SELECT count(DISTINCT device_id)::int AS n FROM sync_requests
        WHERE status = 'held' AND requested_at > now() - interval '15 minutes'`,
    ),
  ]);
  return { state, events, heldDevices: held.rows[0]!.n };
}
