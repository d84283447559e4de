/**
 * The one transaction of a sync that loads: the plan's pieces COPYed table by table (each
 * table emptied or patched first), every foreign key checked, the hashes verified, the
 * ledger written, then COMMIT; rolled back on any failure, so the local data is as it was.
 * The load reads the pieces as they arrive and waits in its transaction while a broken
 * transfer is resumed; if it cannot be, what arrived is spilled to staging before the rollback.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { TableDigest } from '../../contract/canonical.ts';
import { countRows } from '../../contract/copy-text.ts';
import { toRuns } from '../../contract/pieces.ts';
import { COPY_SESSION_SETTINGS_SQL, TABLES } from '../../contract/tables.ts';
import type { Manifest } from '../../contract/wire.ts';
import type { PoolClient } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import { step } from '../../platform/step.ts';
import type { EdgeMetrics } from '../metrics.ts';
import type { TableProgress } from '../model.ts';
import { finishSync, insertSyncTables, lastAppliedTables, setState } from '../repo/ledger.ts';
import { changedTables, notifyDataChanged } from '../repo/news.ts';
import { deleteKeyRange, replaceHeldPieces } from '../repo/pieces.ts';
import {
  checkForeignKeys,
  copyIntoTable,
  deferKeys,
  emptyDataTables,
  emptyTable,
  setTriggers,
  type LoadMode,
} from '../repo/tables.ts';
import { ledgerRow, type Attempt } from './attempt.ts';
import { heldFacts, verifyLoaded } from './checks.ts';
import { keptTablesBroken } from './errors.ts';
import type { TablePlan } from './plan.ts';
import type { SyncStats } from './stats.ts';

/** What the load needs of the transfer (transfer.ts), which it does not import. */
export interface PieceSource {
  /** A table's rows: off the fetch (resumed after a break), or from staging. */
  rows(t: TablePlan): AsyncIterable<Buffer>;
  /** After a table's COPY: throws why its rows ended early, if they did. */
  check(): void;
  /** Once every piece was taken: the fetch must end there. */
  finish(): Promise<void>;
  close(): Promise<void>;
  /** Before a failed load's ROLLBACK, on its connection: what arrived, staged for the next try. */
  spill(tx: PoolClient): Promise<{ staged: number; differed: number }>;
}

export interface Applied {
  rowsLoaded: number;
  tablesLoaded: string[];
  tables: TableDigest[];
}

/** The load's one transaction: load, verify, commit; rolled back (what arrived spilled) on failure. */
export async function apply(
  a: Attempt,
  m: Manifest,
  plan: readonly TablePlan[],
  transfer: PieceSource,
  log: Logger,
): Promise<Applied> {
  const { client, deps } = a;
  await client.query('BEGIN');
  try {
    await client.query(COPY_SESSION_SETTINGS_SQL);
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
    await spillArrived(transfer, client, log);
    await client.query('ROLLBACK');
    throw err;
  }
}

/** What arrived, kept for the next try; a transaction the failure aborted gives nothing back. */
async function spillArrived(transfer: PieceSource, client: PoolClient, log: Logger): Promise<void> {
  await transfer.close();
  try {
    const spilled = await transfer.spill(client);
    if (spilled.staged + spilled.differed > 0)
      log.info({ event: 'sync.spill', ...spilled }, 'kept the pieces that arrived for the next try');
  } catch (err) {
    log.debug({ event: 'sync.spill', err }, 'the failed load could not give back what arrived');
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
  await finishSync(client, a.syncId, { ...ledgerRow(a, 'success', rows), wiped: m.wipe !== undefined });
  const now = new Date().toISOString();
  const changed = changedTables(before?.tables, tables);
  if (changed.length > 0 || m.wipe)
    await notifyDataChanged(client, {
      manifestId: m.manifestId,
      tables: changed,
      committedAt: now,
      ...(m.wipe ? { wiped: true } : {}),
    });
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

export interface LoadOptions {
  log: Logger;
  /** How a table may be loaded on its own (repo/tables.ts); `whole`: every table is emptied first. */
  mode: LoadMode;
  metrics: EdgeMetrics;
  progress: ((p: TableProgress) => void) | undefined;
}

const PROGRESS_MS = 200;

/** The rows as they pass into COPY, reported at most every PROGRESS_MS and once at the end. */
async function* reported(
  rows: AsyncIterable<Buffer>,
  table: string,
  rowCount: number,
  progress: (p: TableProgress) => void,
): AsyncGenerator<Buffer> {
  const p: TableProgress = { table, rows: 0, rowCount, bytes: 0, done: false };
  let last = 0;
  for await (const chunk of rows) {
    p.rows += countRows(chunk);
    p.bytes += chunk.byteLength;
    if (performance.now() - last >= PROGRESS_MS) {
      last = performance.now();
      progress({ ...p });
    }
    yield chunk;
  }
  progress({ ...p, done: true });
}

/**
 * Applies the plan in the caller's transaction: a reloaded table is emptied (unless all
 * were) and COPYed from its pieces (`source`: off the fetch, or from staging); a patched
 * one loses the key ranges of its changed pieces and whatever lies past its last key, then
 * gets those pieces COPYed in.
 */
async function loadTables(
  client: PoolClient,
  source: PieceSource,
  plan: readonly TablePlan[],
  stats: SyncStats,
  options: LoadOptions,
): Promise<{ rows: number; tables: string[] }> {
  const tableByTable = options.mode !== 'whole';
  let rows = 0;
  const tables: string[] = [];
  for (const t of plan) {
    if (t.mode === 'keep') {
      if (!tableByTable) throw new AppError('SNAPSHOT_INVALID', `table ${t.def.name} came without rows`);
      continue;
    }
    if (t.mode === 'full' && tableByTable) await emptyTable(client, t.def);
    if (t.mode === 'delta') stats.rowsDeleted(await deleteChangedRanges(client, t));
    rows += await copyTable(client, source, t, options);
    tables.push(t.def.name);
  }
  return { rows, tables };
}

/** A patched table's rows in the ranges of its changed pieces, and past its last key. */
async function deleteChangedRanges(client: PoolClient, t: TablePlan): Promise<number> {
  const { def, pieces } = t;
  let deleted = 0;
  for (const [from, to] of toRuns(t.load))
    deleted += await deleteKeyRange(
      client,
      def,
      from === 0 ? null : pieces[from - 1]!.last,
      pieces[to]!.last,
    );
  return deleted + (await deleteKeyRange(client, def, pieces.at(-1)!.last, null));
}

/** COPYs the plan's pieces of one table in; returns its rows. */
async function copyTable(
  client: PoolClient,
  source: PieceSource,
  t: TablePlan,
  { log, metrics, progress }: LoadOptions,
): Promise<number> {
  const { def, pieces } = t;
  const count = t.load.reduce((n, j) => n + pieces[j]!.rows, 0);
  if (count === 0) return 0;
  const data = source.rows(t);
  const started = performance.now();
  await step(log, 'sync.load.table', { table: def.name, rows: count, mode: t.mode }, () =>
    pipeline(
      Readable.from(progress ? reported(data, def.name, count, progress) : data),
      copyIntoTable(client, def),
    ),
  );
  source.check();
  metrics.recordTableLoad(def.name, count, (performance.now() - started) / 1000);
  return count;
}

/**
 * The load of a plan: each table emptied or patched on its own when the edge may, with
 * triggers off (replica) or keys deferred (deferred), every key checked at the end; every
 * table emptied first otherwise (whole).
 */
async function loadPlan(
  client: PoolClient,
  source: PieceSource,
  plan: readonly TablePlan[],
  stats: SyncStats,
  options: LoadOptions,
): Promise<{ rows: number; tables: string[] }> {
  // A load that keeps nothing has no reason to defer: the keys are checked row by row as
  // parents come first, and the transaction holds no queue of millions of deferred checks.
  const mode = options.mode === 'deferred' && plan.every((t) => t.mode === 'full') ? 'whole' : options.mode;
  if (mode === 'replica') await setTriggers(client, false);
  else if (mode === 'deferred') await deferKeys(client, true);
  else await emptyDataTables(client);
  const result = await loadTables(client, source, plan, stats, { ...options, mode });
  await source.finish();
  await checkKeys(client, mode, result.tables.length < TABLES.length);
  return result;
}

/** Every foreign key, after a load that turned them off or deferred them. */
async function checkKeys(client: PoolClient, mode: LoadMode, keptSome: boolean): Promise<void> {
  // Against tables this edge kept, the kept rows are as suspect as the sent ones.
  const broken = (violated: string) =>
    keptSome
      ? keptTablesBroken(violated)
      : new AppError('SNAPSHOT_INVALID', `snapshot breaks foreign keys: ${violated}`);
  if (mode === 'replica') {
    await setTriggers(client, true);
    const violated = await checkForeignKeys(client);
    if (violated.length > 0) throw broken(violated.join(', '));
  } else if (mode === 'deferred') {
    // The deferred checks run here, not at COMMIT, so a violation is named like the others.
    await deferKeys(client, false).catch((err: unknown) => {
      const e = err as { code?: string; constraint?: string };
      throw e.code === '23503' ? broken(e.constraint ?? 'a foreign key') : err;
    });
  }
}
