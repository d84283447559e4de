/**
 * A device's snapshot: digests (pass one) and the row stream (pass two), both read
 * inside the caller's REPEATABLE READ transaction, so they describe the same instant.
 * Nothing here holds more than one COPY chunk of rows in memory.
 */
import { createHash, type Hash } from 'node:crypto';
import type { TableDigest } from '../../contract/canonical.ts';
import { digestTables } from '../../contract/digest-pg.ts';
import { TABLES } from '../../contract/tables.ts';
import type {
  EndFrame,
  Manifest,
  ManifestFrame,
  ManifestSignature,
  TableFrame,
} from '../../contract/wire.ts';
import type { PoolClient } from '../../platform/db.ts';
import type { Logger } from '../../platform/logger.ts';
import { startStep } from '../../platform/step.ts';
import { iterateInContext } from '../../platform/tracing.ts';
import { copyScopedTable, scopeSelectSql } from '../repo/snapshot.ts';

export function computeDigests(
  client: PoolClient,
  onLine?: (table: string, line: string) => void,
): Promise<TableDigest[]> {
  return digestTables(client, scopeSelectSql, onLine);
}

const NEWLINE = 0x0a;

function countNewlines(chunk: Buffer): number {
  let count = 0;
  let at = chunk.indexOf(NEWLINE);
  while (at >= 0) {
    count++;
    at = chunk.indexOf(NEWLINE, at + 1);
  }
  return count;
}

export interface StreamStats {
  bytes: number;
  payload: Hash;
}

function frame(value: ManifestFrame | TableFrame | EndFrame): Buffer {
  return Buffer.from(JSON.stringify(value) + '\n');
}

/**
 * The response body (docs/protocol.md): a manifest line, then per table a frame line
 * and its COPY text rows, then an end line. Row counts are checked against the
 * manifest as the rows pass; a difference aborts the stream, which Edge sees as a
 * truncated body.
 */
export async function* snapshotBody(
  client: PoolClient,
  manifest: Manifest,
  signature: ManifestSignature,
  stats: StreamStats,
  known: Partial<Record<string, string>> | undefined,
  log: Logger,
): AsyncGenerator<Buffer> {
  const emit = (buf: Buffer): Buffer => {
    stats.bytes += buf.length;
    stats.payload.update(buf);
    return buf;
  };
  yield emit(frame({ manifest, signature }));
  if (!manifest.rowsIncluded) {
    yield emit(frame({ end: true, tables: 0 }));
    return;
  }
  for (const [i, def] of TABLES.entries()) {
    const expected = manifest.tables[i]!.rowCount;
    const columns = def.columns.map((c) => c.name);
    if (known?.[def.name] === manifest.tables[i]!.sha256) {
      yield emit(frame({ table: def.name, rowCount: expected, columns, rowsIncluded: false }));
      continue;
    }
    yield emit(frame({ table: def.name, rowCount: expected, columns }));
    const tableStep = startStep(log, 'snapshot.table', { table: def.name, rows: expected });
    let rows = 0;
    try {
      for await (const chunk of iterateInContext(tableStep.context, copyScopedTable(client, def))) {
        rows += countNewlines(chunk as Buffer);
        yield emit(chunk as Buffer);
      }
      if (rows !== expected) throw new Error(`${def.name}: streamed ${rows} rows, manifest says ${expected}`);
      tableStep.finish();
    } catch (err) {
      tableStep.finish(err);
      throw err;
    } finally {
      tableStep.finish(new Error('stream closed before the table was sent'));
    }
  }
  yield emit(frame({ end: true, tables: TABLES.length }));
}

export function newStreamStats(): StreamStats {
  return { bytes: 0, payload: createHash('sha256') };
}
