/**
 * The scheduled verify (VERIFY_INTERVAL_SECONDS): the local tables' counts and hashes against
 * the last applied manifest, as `dbupdate edge verify` does. A sync that finds Central
 * unchanged never looks at the rows, so without it a row changed behind the edge's back
 * stays wrong until the data changes at Central.
 *
 * | found          | then                                                                  |
 * |----------------|-----------------------------------------------------------------------|
 * | no drift       | state and metric say so; the next device report tells Central         |
 * | drift          | the same, naming the tables; `verify.finish` warns                    |
 * | drift + repair | also a LOCAL_DRIFT ledger row (its data in doubt), then a full sync    |
 * | nothing applied yet, or a sync running | nothing: the next round looks again         |
 */
import type { DataModel } from '../../contract/data-model.ts';
import type { Pool } from '../../platform/db.ts';
import { isAppError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import { step } from '../../platform/step.ts';
import type { EdgeMetrics } from '../metrics.ts';
import { recordVerify, setState } from '../repo/ledger.ts';
import type { Syncer } from '../sync/run.ts';
import { verifyLocal } from './local.ts';

export interface VerifyDeps {
  pool: Pool;
  syncer: Syncer;
  metrics: EdgeMetrics;
  model: DataModel;
  log: Logger;
  /** VERIFY_REPAIR: reload everything at once when drift is found. */
  repair: boolean;
}

/** One round; never throws (it runs on a schedule). Returns the drifted tables, or undefined when none ran. */
export async function scheduledVerify(deps: VerifyDeps): Promise<string[] | undefined> {
  if (deps.syncer.running) return undefined;
  try {
    const drifted = await step(deps.log, 'verify', {}, async (open) => {
      const result = await verifyLocal(deps.pool, deps.model);
      open.annotate({ drifted: result.drifted, manifestId: result.manifestId });
      return result.drifted;
    });
    await setState(deps.pool, { driftTables: drifted.join(','), driftCheckedAt: new Date().toISOString() });
    deps.metrics.recordVerify(drifted.length);
    if (drifted.length === 0) return drifted;
    deps.log.warn(
      { event: 'verify.drift', tables: drifted, repair: deps.repair },
      `local tables differ from the last applied manifest: ${drifted.join(', ')}` +
        (deps.repair
          ? '; reloading them all'
          : '; run `dbupdate edge sync --full` (or set VERIFY_REPAIR=true)'),
    );
    if (deps.repair) {
      await recordVerify(
        deps.pool,
        'LOCAL_DRIFT',
        `scheduled verify: ${drifted.join(', ')} drifted; reloaded`,
      );
      const repaired = await deps.syncer.run('verify', { full: true });
      // A load verifies every table before it commits: after one, nothing has drifted.
      if (repaired.status === 'success') {
        await setState(deps.pool, { driftTables: '', driftCheckedAt: new Date().toISOString() });
        deps.metrics.recordVerify(0);
      }
    }
    return drifted;
  } catch (err) {
    if (!(isAppError(err) && err.code === 'NOTHING_APPLIED'))
      deps.log.warn({ event: 'verify.failed', err }, 'scheduled verify did not run');
    return undefined;
  }
}
