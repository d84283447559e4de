/**
 * A running rollout moved on at each read of the release state (gate.ts): its counts read,
 * the step waves.ts decides taken, once, whichever replica gets there first. A pause names
 * its cause and raises DbupdateRolloutPaused (its actor is `central:rollout`).
 */
import type { Logger } from '../../platform/logger.ts';
import type { Pool } from '../../platform/db.ts';
import { advanceRollout, insertReleaseEvent, rolloutCounts, setPaused, type ReleaseRow } from './repo.ts';
import { rolloutStep, type Rollout, type Staging } from './waves.ts';

export const ROLLOUT_ACTOR = 'central:rollout';

export function rolloutOf(row: ReleaseRow): Rollout {
  return {
    startedAt: row.rollout_started_at,
    canariesOkAt: row.rollout_canaries_ok_at,
    endedAt: row.rollout_ended_at,
  };
}

/** True when it changed the release state. */
export async function moveRollout(
  o: { pool: Pool; staging: Staging; log: Logger },
  row: ReleaseRow,
): Promise<boolean> {
  const rollout = rolloutOf(row);
  // Paused, a rollout stands still: no wave opens, nothing more is counted against it.
  if (row.paused_at !== null) return false;
  const started = rollout.startedAt!;
  const from = row.resumed_at && row.resumed_at > started ? row.resumed_at : started;
  const counts = await rolloutCounts(
    o.pool,
    started,
    from,
    o.staging.canaryCohort,
    rollout.canariesOkAt !== null,
  );
  const step = rolloutStep(rollout, o.staging, counts, Date.now());
  if (step.kind === 'none') return false;
  if (step.kind === 'pause') {
    if (!(await setPaused(o.pool, ROLLOUT_ACTOR, step.reason))) return false;
    await insertReleaseEvent(o.pool, ROLLOUT_ACTOR, 'pause', {
      reason: step.reason,
      failures: counts.failures,
    });
    o.log.error(
      { event: 'release.rollout', step: 'pause', alert: true, failures: counts.failures },
      step.reason,
    );
    return true;
  }
  if (!(await advanceRollout(o.pool, step.kind))) return false;
  const action = step.kind === 'end' ? 'rollout_end' : 'canaries_ok';
  await insertReleaseEvent(o.pool, 'central', action, { canariesAcked: counts.canariesAcked });
  o.log.info(
    { event: 'release.rollout', step: step.kind, canariesAcked: counts.canariesAcked },
    step.kind === 'end' ? 'the rollout reached every device' : 'canaries acked: the waves begin',
  );
  return true;
}
