/**
 * A device's snapshot: digests (pass one) and the row stream (pass two), both read
 * inside one REPEATABLE READ transaction (a SnapshotSession), so they describe the same instant.
 * A stream holds at most one 64 KB chunk of rows at a time; what the table cache keeps is
 * bounded apart (TABLE_CACHE_MB).
 */
import { createHash, type Hash } from 'node:crypto';
import type { TableDigest } from '../../contract/canonical.ts';
import { chunkBytes, countRows } from '../../contract/copy-text.ts';
import { digestTables } from '../../contract/digest-pg.ts';
import { DATA_MODEL } from '../../contract/data-model.ts';
import type { TableDef } from '../../contract/tables.ts';
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
import { copyScopedTable, scopeSelectSql } from './repo/scope.ts';
import { inlineLines, type InlinePiece } from './inline-pieces.ts';
import type { SnapshotSession } from './sources/snapshot-session.ts';
import type { ScopeMemory } from './memory/memory.ts';

export function computeDigests(
  client: PoolClient,
  onLine?: (table: string, line: string) => void,
  tables: readonly TableDef[] = DATA_MODEL.tables,
  observe?: (def: TableDef) => ((chunk: Buffer) => void) | undefined,
): Promise<TableDigest[]> {
  return digestTables(client, scopeSelectSql, onLine, tables, observe);
}

const CHUNK_BYTES = 64 * 1024;

export interface StreamStats {
  bytes: number;
  payload: Hash;
  /** The end frame went out: every row the manifest announced was produced. */
  complete: boolean;
  /** Bytes of table rows served from the table cache rather than read. */
  bytesFromCache: number;
}

function frame(value: ManifestFrame | TableFrame | EndFrame): Buffer {
  return Buffer.from(JSON.stringify(value) + '\n');
}

/**
 * The response body (docs/protocol.md): a manifest line, then per table a frame line
 * and its COPY text rows, then an end line. It owns the session's transaction: closed
 * when the last row is out, destroyed when the stream fails or is abandoned mid-COPY.
 */
export interface BodySource {
  /** None when every table to send is in `pinned` (or none is sent): no row is read. */
  session: SnapshotSession | undefined;
  /** Table rows found in the cache before the answer began, held so eviction cannot take them. */
  pinned: ReadonlyMap<string, Buffer[]>;
  memory: ScopeMemory;
  /** The edge's data-model version's tables and columns: Central's own, or their projection. */
  tables: readonly TableDef[];
  /** With pieces: every piece of the manifest, sent after it (sync/inline-pieces.ts). */
  inline?: readonly InlinePiece[] | undefined;
}

export async function* snapshotBody(
  source: BodySource,
  signed: { manifest: Manifest; signature: ManifestSignature },
  stats: StreamStats,
  known: Partial<Record<string, string>> | undefined,
  log: Logger,
): AsyncGenerator<Buffer> {
  const emit = (buf: Buffer): Buffer => {
    stats.bytes += buf.length;
    stats.payload.update(buf);
    return buf;
  };
  let failure: Error | undefined = new Error('the response closed before the snapshot was sent');
  try {
    const { manifest } = signed;
    yield emit(frame(signed));
    const rows = bodyCarriesRows(manifest);
    if (rows) {
      for (const [i, def] of source.tables.entries()) {
        const expected = manifest.tables[i]!;
        const skip = known?.[def.name] === expected.sha256;
        const columns = def.columns.map((c) => c.name);
        yield emit(
          frame({
            table: def.name,
            rowCount: expected.rowCount,
            columns,
            ...(skip ? { rowsIncluded: false } : {}),
          }),
        );
        if (skip) continue;
        // Content-addressed, so an entry found now is as good as one pinned at the start.
        const cached = source.pinned.get(def.name) ?? source.memory.rows(expected);
        if (cached) stats.bytesFromCache += chunkBytes(cached);
        for await (const chunk of cached ?? readTable(source, def, expected, log)) yield emit(chunk);
      }
    }
    if (source.inline) {
      for (const line of inlineLines(source.inline)) yield emit(line);
      stats.bytesFromCache += source.inline.reduce((n, p) => n + p.rows.length, 0);
    } else yield emit(frame({ end: true, tables: rows ? source.tables.length : 0 }));
    stats.complete = true;
    failure = undefined;
  } catch (err) {
    failure = err as Error;
    throw err;
  } finally {
    await source.session?.close(failure);
  }
}

/** A table read in the session, kept in the cache once its row count checked out. */
async function* readTable(source: BodySource, def: TableDef, expected: TableDigest, log: Logger) {
  if (!source.session) throw new Error(`${def.name}: no session to read it in`);
  const keeper = source.memory.collectRows(expected);
  for await (const chunk of tableRows(source.session.client, def, expected.rowCount, log)) {
    keeper?.add(chunk);
    yield chunk;
  }
  keeper?.keep();
}

/**
 * One table's rows in COPY text, counted as they pass: a count that differs from the
 * manifest aborts the stream, which Edge sees as a truncated body.
 */
async function* tableRows(
  client: PoolClient,
  def: TableDef,
  expected: number,
  log: Logger,
): AsyncGenerator<Buffer> {
  const tableStep = startStep(log, 'snapshot.table', { table: def.name, rows: expected });
  let rows = 0;
  // COPY hands over about a row per chunk: gathered into larger ones, the socket and the
  // compressor see a few hundred writes per megabyte instead of thousands.
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  try {
    for await (const chunk of iterateInContext(tableStep.context, copyScopedTable(client, def))) {
      rows += countRows(chunk as Buffer);
      pending.push(chunk as Buffer);
      pendingBytes += (chunk as Buffer).length;
      if (pendingBytes >= CHUNK_BYTES) {
        yield Buffer.concat(pending, pendingBytes);
        [pending, pendingBytes] = [[], 0];
      }
    }
    if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
    if (rows !== expected) throw new Error(`${def.name}: streamed ${rows} rows, manifest says ${expected}`);
    tableStep.finish();
  } catch (err) {
    tableStep.finish(err);
    throw err;
  } finally {
    tableStep.finish(new Error('stream closed before the table was sent'));
  }
}

/** Whether the answer's body streams rows; with pieces, the edge fetches those it lacks from /api/device-sync/pieces. */
export function bodyCarriesRows(manifest: Manifest): boolean {
  return manifest.rowsIncluded && !manifest.pieces;
}

export function newStreamStats(): StreamStats {
  return { bytes: 0, payload: createHash('sha256'), complete: false, bytesFromCache: 0 };
}
