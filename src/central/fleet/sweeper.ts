/** Closes audit rows a dead Central left open: once at start, then every few minutes. */
import type { Pool } from '../../platform/db.ts';
import type { Logger } from '../../platform/logger.ts';
import { step } from '../../platform/step.ts';
import { closeAbandonedRequests } from '../sync/repo/requests.ts';

export interface Sweeper {
  /** The sweep made at start. */
  first: Promise<void>;
  stop(): void;
}

export function startSweeper(pool: Pool, log: Logger, olderThanSeconds: number, everyMs = 300_000): Sweeper {
  const sweep = () =>
    step(log, 'audit.sweep', { olderThanSeconds }, async (open) => {
      open.annotate({ closed: await closeAbandonedRequests(pool, olderThanSeconds) });
    }).catch(() => undefined); // logged by the step; the next round tries again
  const first = sweep();
  const timer = setInterval(() => void sweep(), everyMs);
  timer.unref();
  return { first, stop: () => clearInterval(timer) };
}
