/**
 * The body of a sync as it arrives: counted and hashed on the way, then COPYed table by
 * table into the caller's transaction.
 */
import type { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { SnapshotItem } from '../../contract/snapshot-reader.ts';
import { countRows } from '../../contract/copy-text.ts';
import type { DataModel } from '../../contract/data-model.ts';
import type { PoolClient } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import { step } from '../../platform/step.ts';
import { copyIntoTable, emptyTable } from '../repo/tables.ts';
import type { EdgeMetrics } from '../metrics.ts';
import type { TableProgress } from '../model.ts';

export interface Transfer {
  bytes: number;
  hash: ReturnType<typeof createHash>;
}

export async function* counted(
  source: AsyncIterable<Uint8Array>,
  transfer: Transfer,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    transfer.bytes += chunk.byteLength;
    transfer.hash.update(chunk);
    yield chunk;
  }
}

/**
 * COPYs every table frame into its table. `tableByTable` (triggers are off): a table is
 * emptied just before its rows load and a frame without rows keeps the local table as it
 * is; otherwise all tables were emptied first (children before parents, as the foreign
 * keys require) and every frame must bring rows.
 */
export interface LoadOptions {
  log: Logger;
  tableByTable: boolean;
  metrics: EdgeMetrics;
  model: DataModel;
  progress: ((p: TableProgress) => void) | undefined;
}

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

const PROGRESS_MS = 200;

export async function loadTables(
  client: PoolClient,
  items: AsyncGenerator<SnapshotItem>,
  { log, tableByTable, metrics, model, progress }: LoadOptions,
): Promise<{ rows: number; tables: string[] }> {
  let rows = 0;
  const tables: string[] = [];
  for (const def of model.tables) {
    const next = await items.next();
    if (next.done || next.value.type !== 'table')
      throw new AppError('SNAPSHOT_INVALID', `expected table ${def.name}`);
    const { frame, rows: data } = next.value;
    if (frame.table !== def.name || frame.columns.join(',') !== def.columns.map((c) => c.name).join(',')) {
      throw new AppError(
        'SNAPSHOT_INVALID',
        `table frame ${frame.table} does not match local table ${def.name}`,
      );
    }
    if (frame.rowsIncluded === false) {
      if (!tableByTable) throw new AppError('SNAPSHOT_INVALID', `table ${def.name} came without rows`);
      continue;
    }
    if (tableByTable) await emptyTable(client, def);
    const started = performance.now();
    await step(log, 'sync.load.table', { table: def.name, rows: frame.rowCount }, () =>
      pipeline(
        Readable.from(progress ? reported(data, def.name, frame.rowCount, progress) : data),
        copyIntoTable(client, def),
      ),
    );
    metrics.recordTableLoad(def.name, frame.rowCount, (performance.now() - started) / 1000);
    rows += frame.rowCount;
    tables.push(def.name);
  }
  const end = await items.next();
  if (end.done || end.value.type !== 'end')
    throw new AppError('SNAPSHOT_INVALID', 'stream did not end after the last table');
  return { rows, tables };
}
