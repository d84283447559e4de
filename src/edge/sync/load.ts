/**
 * The load: pieces COPYed table by table into the caller's transaction, each table emptied
 * or patched first, every foreign key checked at the end.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { countRows } from '../../contract/copy-text.ts';
import { toRuns } from '../../contract/pieces.ts';
import type { PoolClient } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import { step } from '../../platform/step.ts';
import { deleteKeyRange } from '../repo/pieces.ts';
import {
  checkForeignKeys,
  copyIntoTable,
  deferKeys,
  emptyDataTables,
  emptyTable,
  setTriggers,
  type LoadMode,
} from '../repo/tables.ts';
import { TABLES } from '../../contract/tables.ts';
import { keptTablesBroken } from './errors.ts';
import type { EdgeMetrics } from '../metrics.ts';
import type { TableProgress } from '../model.ts';
import type { TablePlan } from './plan.ts';
import type { SyncStats } from './stats.ts';

/** Where a table's rows come from (transfer.ts): off the fetch, or from staging. */
export interface PieceSource {
  rows(t: TablePlan): AsyncIterable<Buffer>;
  /** Once every piece was taken: the fetch must end there. */
  finish(): Promise<void>;
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
  metrics.recordTableLoad(def.name, count, (performance.now() - started) / 1000);
  return count;
}

/**
 * The load of a plan: each table emptied or patched on its own when the edge may, with
 * triggers off (replica) or keys deferred (deferred), every key checked at the end; every
 * table emptied first otherwise (whole).
 */
export async function loadPlan(
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
