/**
 * The one transaction of a sync that loads: load, check keys, verify hashes, write the
 * ledger, commit; rolled back on any failure, so the local data is as it was. The load reads
 * the pieces as they arrive; if the transfer breaks, the rest is fetched into staging
 * (resuming after cuts) and the transaction runs again from there.
 */
import type { TableDigest } from '../../contract/canonical.ts';
import { COPY_SESSION_SETTINGS_SQL } from '../../contract/tables.ts';
import type { Manifest } from '../../contract/wire.ts';
import type { Logger } from '../../platform/logger.ts';
import { step } from '../../platform/step.ts';
import { finishSync, insertSyncTables, lastAppliedTables, setState } from '../repo/ledger.ts';
import { changedTables, notifyDataChanged } from '../repo/news.ts';
import { replaceHeldPieces } from '../repo/pieces.ts';
import { ledgerRow, type Attempt } from './attempt.ts';
import { heldFacts, verifyLoaded } from './checks.ts';
import { loadPlan } from './load.ts';
import type { TablePlan } from './plan.ts';
import type { PieceTransfer } from './transfer.ts';

export interface Applied {
  rowsLoaded: number;
  tablesLoaded: string[];
  tables: TableDigest[];
}

export async function applyResuming(
  a: Attempt,
  m: Manifest,
  plan: readonly TablePlan[],
  transfer: PieceTransfer,
  log: Logger,
): Promise<Applied> {
  try {
    return await apply(a, m, plan, transfer, log);
  } catch (err) {
    await transfer.close();
    if (!transfer.resumable(err)) throw err;
    log.warn(
      { event: 'sync.resume', err, fetched: a.stats.piecesFetched },
      'the transfer broke during the load; fetching the rest into staging, then loading again',
    );
    await step(log, 'sync.resume', {}, async (open) => {
      await transfer.resume();
      open.annotate({ ...a.stats.counts() });
    });
    return await apply(a, m, plan, transfer, log);
  }
}

async function apply(
  a: Attempt,
  m: Manifest,
  plan: readonly TablePlan[],
  transfer: PieceTransfer,
  log: Logger,
): Promise<Applied> {
  const { client, deps } = a;
  await client.query('BEGIN');
  try {
    await client.query(COPY_SESSION_SETTINGS_SQL);
    a.stats.loadStarted();
    const loaded = await step(log, 'sync.load', {}, () =>
      loadPlan(client, transfer, plan, a.stats, {
        log,
        mode: a.loadMode,
        metrics: deps.metrics,
        progress: a.progress,
      }),
    );
    const tables = await step(log, 'sync.verify', {}, () => verifyLoaded(client, m, deps.model, deps.mac));
    await step(log, 'sync.commit', {}, () => commit(a, m, plan, tables, loaded.rows));
    return { rowsLoaded: loaded.rows, tablesLoaded: loaded.tables, tables };
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

/** The ledger, the held pieces, the news and the state, then COMMIT. */
async function commit(
  a: Attempt,
  m: Manifest,
  plan: readonly TablePlan[],
  tables: TableDigest[],
  rows: number,
): Promise<void> {
  const { client } = a;
  // Checked again at the end: a slow link must not stretch a manifest's lifetime.
  a.clock!.check('before commit');
  const before = a.held ?? (await lastAppliedTables(client));
  await insertSyncTables(client, a.syncId, tables);
  for (const t of plan)
    if (t.mode !== 'keep')
      await replaceHeldPieces(client, t.def.name, m.schemaVersion, t.expected.sha256, t.pieces);
  await finishSync(client, a.syncId, ledgerRow(a, 'success', rows));
  const now = new Date().toISOString();
  const changed = changedTables(before?.tables, tables);
  if (changed.length > 0)
    await notifyDataChanged(client, { manifestId: m.manifestId, tables: changed, committedAt: now });
  await setState(client, {
    lastManifestId: m.manifestId,
    lastGlobalSha256: m.globalSha256,
    lastSuccessAt: now,
    lastCheckAt: now,
    ...heldFacts(m),
    // The load verified every table before this commit: drift reported before is gone.
    ...(a.state.driftTables ? { driftTables: '', driftCheckedAt: now } : {}),
  });
  await client.query('COMMIT');
}
