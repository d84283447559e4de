/**
 * Audit retention: deletes requests, manifests and acknowledgements older than the
 * retention period, in short transactions of `batch` rows so that the service keeps
 * writing its audit rows meanwhile. Run it daily from cron or a systemd timer;
 * docs/observability.md has the plan for time partitions when deletes become too slow.
 */
import { withTransaction, type Pool } from '../../platform/db.ts';
import type { Logger } from '../../platform/logger.ts';
import { step } from '../../platform/step.ts';
import { deleteOldManifests, deleteOldRows } from './repo/retention.ts';

export interface PruneResult {
  cutoff: string;
  requests: number;
  pieceFetches: number;
  manifests: number;
  acks: number;
  tableRows: number;
}

export async function pruneAudit(
  pool: Pool,
  options: { olderThanDays: number; batch: number; now?: Date },
  log: Logger,
): Promise<PruneResult> {
  const cutoff = new Date((options.now ?? new Date()).getTime() - options.olderThanDays * 86_400_000);
  const result: PruneResult = {
    cutoff: cutoff.toISOString(),
    requests: 0,
    manifests: 0,
    acks: 0,
    tableRows: 0,
    pieceFetches: 0,
  };
  return step(log, 'audit.prune', { cutoff: result.cutoff }, async (open) => {
    for (;;) {
      const done = await withTransaction(pool, 'BEGIN', (tx) =>
        deleteOldManifests(tx, cutoff, options.batch),
      );
      result.manifests += done.manifests;
      result.acks += done.acks;
      result.tableRows += done.tableRows;
      if (done.manifests < options.batch) break;
    }
    const logs = [
      ['sync_requests', 'requests'],
      ['sync_piece_fetches', 'pieceFetches'],
    ] as const;
    for (const [table, counted] of logs) {
      for (;;) {
        const done = await withTransaction(pool, 'BEGIN', (tx) =>
          deleteOldRows(tx, table, cutoff, options.batch),
        );
        result[counted] += done;
        if (done < options.batch) break;
      }
    }
    open.annotate({ ...result });
    return result;
  });
}
