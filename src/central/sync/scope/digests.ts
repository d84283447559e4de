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
import type { CentralMetrics } from '../../metrics.ts';
import type { Device } from '../../model.ts';
import { computeDigests } from '../snapshot-body.ts';
import type { OwnRow, OwnRowReader } from './own-rows.ts';
import type { SharedScopeReader } from './shared-scopes.ts';
import type { Known } from '../planner.ts';
import { scopeVersionParts } from './version.ts';
import type { ScopeMemory } from '../memory/memory.ts';

export interface ScopeCaches {
  memory: ScopeMemory;
  metrics: CentralMetrics;
}

/** What memory holds for a device's answer now: the planner's facts, and what to answer with. */
export interface Recalled {
  known: Pick<Known, 'pieces' | 'digests' | 'lackedInMemory' | 'sharedInMemory'>;
  /** The device's digests, when memory has them at its scope version. */
  digests: TableDigest[] | undefined;
  /** A rows edge: the rows of every table it lacks, held so an eviction cannot take them. */
  pinned: Map<string, Buffer[]>;
  /** A pieces edge: the pieces of every table it lacks (none when it holds them all). */
  pieces: Map<string, readonly Piece[]> | undefined;
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
    const pieces = caches.memory.pieces(t);
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
  const keep = caches.memory.pieceKeeper();
  const digests = await computeDigests(tx, undefined, tables, (def) => {
    const cutter = new PieceCutter(def, (piece, rows) => keep(def.name, piece, rows));
    cutters.set(def.name, cutter);
    return (chunk) => cutter.write(chunk);
  });
  for (const d of digests) caches.memory.keepPieces(d, cutters.get(d.name)!.end());
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
      .filter((t) => !caches.memory.pieces(t))
      .map((t) => t.name),
  );
  const missing = model.tables.filter((def) => uncut.has(def.name));
  if (missing.length > 0) await digestAndCut(caches, tx, missing);
  const pieces = lackedPieces(caches, digests, held);
  if (!pieces) throw new Error('pieces cut in this session were evicted before the manifest');
  return pieces;
}

/**
 * What memory can answer for `device` at the scope version read with its audit row. Cached
 * digests describe the data as committed now (the version changes in the same transaction as
 * any change to the scope) and content-addressed rows are exact for their hash, so when both
 * hold the answer no session is needed: an unchanged device costs no slot, no snapshot
 * connection and no row read, and a device that needs what its neighbours were just sent
 * gets it from memory.
 */
export function recall(
  caches: ScopeCaches,
  device: Device,
  model: DataModel,
  version: string,
  held: Held,
): Recalled {
  const digests = caches.memory.digests(device, version, model.version);
  const out: Recalled = {
    known: { pieces: held.pieces, digests: 'absent', lackedInMemory: false, sharedInMemory: false },
    digests,
    pinned: new Map(),
    pieces: undefined,
  };
  if (!digests) {
    const shared = caches.memory.sharedDigests(device, version, model.version);
    // A pieces edge needs the shared tables' lacked pieces too, or a session anyway.
    out.known.sharedInMemory = shared !== undefined && (!held.pieces || !!lackedPieces(caches, shared, held));
    return out;
  }
  out.known.digests = held.global === globalSha256(digests) ? 'held' : 'lacking';
  if (held.pieces) {
    out.pieces = lackedPieces(caches, digests, held);
    out.known.lackedInMemory = out.pieces !== undefined;
    return out;
  }
  const pinned = lackedRows(caches, digests, held);
  if (!pinned) return out;
  out.pinned = pinned;
  out.known.lackedInMemory = true;
  return out;
}

/** A rows edge: the rows of every table `held` lacks, from memory; undefined when one is not there. */
export function lackedRows(
  caches: ScopeCaches,
  digests: readonly TableDigest[],
  held: Held,
): Map<string, Buffer[]> | undefined {
  const out = new Map<string, Buffer[]>();
  for (const t of lacking(digests, held)) {
    const rows = caches.memory.rows(t);
    if (!rows) return undefined;
    out.set(t.name, rows);
  }
  return out;
}

/**
 * The device's digests completed from its location's shared ones with its own row, read in a
 * batch (OwnRowReader) instead of a snapshot session, and kept in the digest cache. With
 * `batchFirst`, the shared tables of a location none of whose devices was answered at its
 * version are first read with other such locations'. Nothing is kept when the shared digests
 * (or a pieces edge's lacked pieces of them) are not there, or the row read is not the version
 * the request saw (the row changed since): the planner then opens a session.
 */
/** What the own-row step did, for its trace. */
export interface OwnRowRead {
  sharedBatch?: 'read' | 'not_used';
  ownRow?: 'failed' | 'missing' | 'read' | 'changed';
}

export async function readOwnRow(
  caches: ScopeCaches & { ownRows: OwnRowReader; sharedScopes?: SharedScopeReader | undefined },
  device: Device,
  model: DataModel,
  version: string,
  held: Held,
  batchFirst: boolean,
): Promise<OwnRowRead> {
  const read: OwnRowRead = {};
  if (batchFirst && caches.sharedScopes) {
    read.sharedBatch = (await caches.sharedScopes.read(device, version, model)) ? 'read' : 'not_used';
  }
  const shared = caches.memory.sharedDigests(device, version, model.version);
  if (!shared || (held.pieces && !lackedPieces(caches, shared, held))) return read;
  const def = model.tables.find((d) => d.name === 'devices')!;
  let row: OwnRow | undefined;
  try {
    row = await caches.ownRows.read(device.id, def);
  } catch {
    // A failed read costs nothing but the session it was to save.
    read.ownRow = 'failed';
    return read;
  }
  const same = row?.xmin === scopeVersionParts(version).deviceXmin;
  read.ownRow = !row ? 'missing' : same ? 'read' : 'changed';
  if (!row || !same) return read;
  const own = digestText(caches, def, row.line);
  const digests = model.tables.map((d) => (d === def ? own : shared.find((t) => t.name === d.name)!));
  caches.memory.keepDigests(device, version, model.version, digests);
  return read;
}

/** The digest of one table's COPY text, its pieces and rows kept by content as a digest pass keeps them. */
function digestText(caches: ScopeCaches, def: TableDef, text: Buffer): TableDigest {
  const hasher = new TableHasher(def);
  const keep = caches.memory.pieceKeeper();
  const cutter = new PieceCutter(def, (piece, rows) => keep(def.name, piece, rows));
  hasher.write(text);
  cutter.write(text);
  const digest = hasher.digest();
  caches.memory.keepPieces(digest, cutter.end());
  const rows = caches.memory.collectRows(digest);
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
): Promise<{ digests: TableDigest[]; cache: 'hit' | 'shared' | 'miss' }> {
  const cached = caches.memory.digests(device, version, model.version);
  const shared = cached ? undefined : caches.memory.sharedDigests(device, version, model.version);
  const result = cached ? 'hit' : shared ? 'shared' : 'miss';
  caches.metrics.digestCache.inc({ result });
  if (cached) return { digests: cached, cache: result };
  const started = performance.now();
  let digests: TableDigest[];
  const devices = model.tables.find((def) => def.name === 'devices')!;
  if (shared) {
    const [own] = await digestAndCut(caches, tx, [devices]);
    digests = model.tables.map((def) => (def === devices ? own! : shared.find((t) => t.name === def.name)!));
  } else {
    digests = await digestAndCut(caches, tx, model.tables);
    caches.memory.keepSharedDigests(
      device,
      version,
      model.version,
      digests.filter((t) => t.name !== devices.name),
    );
  }
  caches.metrics.digestSeconds.observe((performance.now() - started) / 1000);
  caches.memory.keepDigests(device, version, model.version, digests);
  return { digests, cache: result };
}
