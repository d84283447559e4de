/**
 * What the caches can answer for a device before any snapshot session: its digests, by
 * its scope version read on the short-query pool, and the rows of every table it must be
 * sent, by content. And, in a session, its digests computed with as little reading as the
 * caches allow (the tables a location's devices share are hashed once per scope version).
 */
import { globalSha256, TableHasher, type TableDigest } from '../../../contract/canonical.ts';
import type { DataModel } from '../../../contract/data-model.ts';
import { PieceCutter, type Piece } from '../../../contract/pieces.ts';
import type { TableDef } from '../../../contract/tables.ts';
import type { PoolClient } from '../../../platform/db.ts';
import type { OpenStep } from '../../../platform/step.ts';
import type { CentralMetrics } from '../../metrics.ts';
import type { Device } from '../../model.ts';
import { DigestCache } from '../memory/digest-cache.ts';
import { computeDigests } from '../snapshot-body.ts';
import type { OwnRow, OwnRowReader } from './own-rows.ts';
import type { SharedScopeReader } from './shared-scopes.ts';
import type { TableCache } from '../memory/table-cache.ts';

export interface ScopeCaches {
  digestCache: DigestCache;
  tableCache: TableCache;
  metrics: CentralMetrics;
}

export interface CachedAnswer {
  tables: TableDigest[];
  /** The rows of every table the device must be sent (none when it holds them all). */
  pinned: Map<string, Buffer[]>;
  /** Whether any rows are sent at all. */
  rows: boolean;
  /** With pieces: the pieces of every table the device must load (no rows are sent). */
  pieces?: Map<string, readonly Piece[]>;
}

/** What the device holds, and whether it loads by pieces. */
export interface Held {
  global: string | null | undefined;
  tables: Partial<Record<string, string>> | undefined;
  pieces: boolean;
}

/** The tables whose content the device lacks: none when its global hash still matches. */
function lacking(digests: readonly TableDigest[], held: Held): TableDigest[] {
  if (held.global === globalSha256(digests)) return [];
  return digests.filter((t) => held.tables?.[t.name] !== t.sha256);
}

/** The pieces of every table `held` lacks, from the cache; undefined when one is not there. */
function lackedPieces(
  caches: ScopeCaches,
  digests: readonly TableDigest[],
  held: Held,
): Map<string, readonly Piece[]> | undefined {
  const out = new Map<string, readonly Piece[]>();
  for (const t of lacking(digests, held)) {
    const pieces = caches.tableCache.pieces(t);
    if (!pieces) return undefined;
    out.set(t.name, pieces);
  }
  return out;
}

/**
 * Digests of `tables` read in `tx`, each cut into pieces on the way and kept by content,
 * with the pieces' rows (up to a budget per pass): the piece fetch that follows a first
 * sync's manifest then finds them all in memory, needing no slot, session or read.
 */
export async function digestAndCut(
  caches: ScopeCaches,
  tx: PoolClient,
  tables: readonly TableDef[],
): Promise<TableDigest[]> {
  const cutters = new Map<string, PieceCutter>();
  const keep = caches.tableCache.pieceKeeper();
  const digests = await computeDigests(tx, undefined, tables, (def) => {
    const cutter = new PieceCutter(def, (piece, rows) => keep(def.name, piece, rows));
    cutters.set(def.name, cutter);
    return (chunk) => cutter.write(chunk);
  });
  for (const d of digests) caches.tableCache.setPieces(d, cutters.get(d.name)!.end());
  return digests;
}

/** The pieces `held` lacks, cutting in `tx` the tables whose pieces the cache no longer has. */
export async function piecesInSession(
  caches: ScopeCaches,
  tx: PoolClient,
  model: DataModel,
  digests: readonly TableDigest[],
  held: Held,
): Promise<Map<string, readonly Piece[]>> {
  const uncut = new Set(
    lacking(digests, held)
      .filter((t) => !caches.tableCache.pieces(t))
      .map((t) => t.name),
  );
  const missing = model.tables.filter((def) => uncut.has(def.name));
  if (missing.length > 0) await digestAndCut(caches, tx, missing);
  const pieces = lackedPieces(caches, digests, held);
  if (!pieces) throw new Error('pieces cut in this session were evicted before the manifest');
  return pieces;
}

/**
 * Cached digests, for the scope version read now, describe the data as committed now (the
 * version changes in the same transaction as any change to the scope); content-addressed
 * rows are exact for their hash. So when both caches hold the answer, no session is needed:
 * an unchanged device costs no slot, no snapshot connection and no row read, and a device
 * that needs tables its neighbours were just sent gets them from memory.
 */
export async function answerFromCaches(
  caches: ScopeCaches,
  device: Device,
  model: DataModel,
  /** Read on the short-query pool with the request's audit row. */
  version: string,
  held: Held,
  open: OpenStep,
): Promise<CachedAnswer | undefined> {
  const digests = caches.digestCache.get(DigestCache.key(device, version, model.version));
  const answer = digests && answerFromDigests(caches, digests, held, open);
  if (answer) caches.metrics.digestCache.inc({ result: 'hit' });
  return answer;
}

/** The answer for `digests` from the table cache; undefined when rows or pieces it needs are not there. */
function answerFromDigests(
  caches: ScopeCaches,
  digests: TableDigest[],
  held: Held,
  open: OpenStep,
): CachedAnswer | undefined {
  if (held.pieces) {
    // No rows are sent: the pieces lists are all the manifest needs.
    const pieces = lackedPieces(caches, digests, held);
    if (!pieces) return undefined;
    open.annotate({ cache: 'hit', pieces: true });
    return { tables: digests, pinned: new Map(), rows: false, pieces };
  }
  if (held.global === globalSha256(digests)) {
    open.annotate({ cache: 'hit', unchanged: true });
    return { tables: digests, pinned: new Map(), rows: false };
  }
  const pinned = new Map<string, Buffer[]>();
  for (const t of digests) {
    if (held.tables?.[t.name] === t.sha256) continue;
    const rows = caches.tableCache.get(t);
    if (!rows) return undefined;
    pinned.set(t.name, rows);
  }
  open.annotate({ cache: 'hit', rowsFromCache: true });
  return { tables: digests, pinned, rows: true };
}

/**
 * The answer for a device whose location's shared tables are hashed at its scope version
 * (a neighbour synced at it), completed with its own row read in a batch (OwnRowReader)
 * instead of a snapshot session. Undefined, and the caller opens a session, when the
 * shared digests or pieces are not cached, or the row read is not the version the request
 * saw (the row changed since).
 */
export async function answerWithOwnRow(
  caches: ScopeCaches & { ownRows: OwnRowReader; sharedScopes?: SharedScopeReader | undefined },
  device: Device,
  model: DataModel,
  version: string,
  held: Held,
  open: OpenStep,
): Promise<CachedAnswer | undefined> {
  const sharedKey = DigestCache.sharedKey(device, version, model.version);
  let shared = caches.digestCache.getShared(sharedKey);
  // The first device of its location: its shared tables are read with other locations'
  // (pieces only: an answer with rows would need a session to send them anyway).
  const batch = !shared && held.pieces ? caches.sharedScopes : undefined;
  const batched = batch !== undefined;
  if (batch) {
    const read = await batch.read(device, version, model);
    open.annotate({ sharedBatch: read ? 'read' : 'not_used' });
    shared = read ? caches.digestCache.getShared(sharedKey) : undefined;
  }
  // Without every piece the device lacks of the shared tables, a session is needed anyway.
  if (!shared || (held.pieces && !lackedPieces(caches, shared, held))) return undefined;
  const def = model.tables.find((d) => d.name === 'devices')!;
  let row: OwnRow | undefined;
  try {
    row = await caches.ownRows.read(device.id, def);
  } catch {
    // A failed read costs nothing but the session it was to save.
    open.annotate({ ownRow: 'failed' });
    return undefined;
  }
  const same = row?.xmin === version.split(':')[1];
  open.annotate({ ownRow: !row ? 'missing' : same ? 'read' : 'changed' });
  if (!row || !same) return undefined;
  const own = digestText(caches, def, row.line);
  const digests = model.tables.map((d) => (d === def ? own : shared.find((t) => t.name === d.name)!));
  caches.digestCache.set(DigestCache.key(device, version, model.version), digests);
  const answer = answerFromDigests(caches, digests, held, open);
  if (answer) caches.metrics.digestCache.inc({ result: batched ? 'batched' : 'own_row' });
  return answer;
}

/** The digest of one table's COPY text, its pieces and rows kept by content as a digest pass keeps them. */
function digestText(caches: ScopeCaches, def: TableDef, text: Buffer): TableDigest {
  const hasher = new TableHasher(def);
  const keep = caches.tableCache.pieceKeeper();
  const cutter = new PieceCutter(def, (piece, rows) => keep(def.name, piece, rows));
  hasher.write(text);
  cutter.write(text);
  const digest = hasher.digest();
  caches.tableCache.setPieces(digest, cutter.end());
  const rows = caches.tableCache.collect(digest);
  rows?.add(text);
  rows?.keep();
  return digest;
}

/** The device's per-table counts and hashes in its session: from the caches while its scope version holds. */
export async function scopeDigests(
  caches: ScopeCaches,
  tx: PoolClient,
  device: Device,
  model: DataModel,
  /** The scope version the session sees, read as it was scoped (SnapshotSource). */
  version: string,
  open: OpenStep,
): Promise<TableDigest[]> {
  const key = DigestCache.key(device, version, model.version);
  const cached = caches.digestCache.get(key);
  const sharedKey = DigestCache.sharedKey(device, version, model.version);
  const shared = cached ? undefined : caches.digestCache.getShared(sharedKey);
  const result = cached ? 'hit' : shared ? 'shared' : 'miss';
  caches.metrics.digestCache.inc({ result });
  open.annotate({ cache: result });
  if (cached) return cached;
  const started = performance.now();
  let digests: TableDigest[];
  const devices = model.tables.find((def) => def.name === 'devices')!;
  if (shared) {
    const [own] = await digestAndCut(caches, tx, [devices]);
    digests = model.tables.map((def) => (def === devices ? own! : shared.find((t) => t.name === def.name)!));
  } else {
    digests = await digestAndCut(caches, tx, model.tables);
    caches.digestCache.setShared(
      sharedKey,
      digests.filter((t) => t.name !== devices.name),
    );
  }
  caches.metrics.digestSeconds.observe((performance.now() - started) / 1000);
  caches.digestCache.set(key, digests);
  return digests;
}
