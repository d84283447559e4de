/**
 * The blast radius of what is pending now (docs/releases.md, "Preview"): for every enabled
 * device that holds data, what it holds (the audit) against what Central holds now (read and
 * hashed location by location in one REPEATABLE READ snapshot, many locations per statement,
 * as the batched reads of the request path do); per table, the devices it reaches and the
 * rows added, changed and removed and the bytes of rows that would travel. Changed rows and
 * bytes are exact where Central still knows the pieces of what a device holds (its memory,
 * when the preview runs in Central: the admin API); else rows changed are unknown and the
 * bytes are those of every changed table whole (the CLI).
 */
import { TableHasher, type TableDigest } from '../../contract/canonical.ts';
import type { DataModel } from '../../contract/data-model.ts';
import type { Piece } from '../../contract/pieces.ts';
import type { Pool, PoolClient } from '../../platform/db.ts';
import { copyOwnRows, setLocationsAndReadVersions, setOwnRowIds } from '../sync/repo/scope.ts';
import { hashLocations } from '../sync/scope/shared-scopes.ts';
import { devicesByLocation, heldByDevice } from './preview-repo.ts';

const BATCH = 200;

export interface PreviewTable {
  table: string;
  devices: number;
  rowsAdded: number;
  rowsRemoved: number;
  /** null: Central no longer knows the pieces of what the devices hold. */
  rowsChanged: number | null;
  /** Bytes of rows (COPY text, before compression) the devices would fetch. */
  bytes: number;
}

export interface Preview {
  devices: number;
  /** Devices that hold data and would take a change. */
  reached: number;
  /** Devices that hold nothing Central knows of: their next sync loads everything. */
  firstSyncs: number;
  tables: PreviewTable[];
  tookMs: number;
}

/** Central's piece index, when the preview runs inside Central (memory/memory.ts). */
export type KnownPieces = (t: TableDigest) => readonly Piece[] | undefined;

interface Current {
  digest: TableDigest;
  pieces: readonly (Piece & { bytes: number })[];
}

export async function previewRelease(pool: Pool, model: DataModel, known?: KnownPieces): Promise<Preview> {
  const started = performance.now();
  const locations = await devicesByLocation(pool);
  const sums = new Map<string, PreviewTable>(model.tables.map((d) => [d.name, emptySum(d.name)]));
  let devices = 0;
  let reached = 0;
  let firstSyncs = 0;
  await inSnapshot(pool, async (client) => {
    const ids = [...locations.keys()];
    for (let at = 0; at < ids.length; at += BATCH) {
      const batch = ids.slice(at, at + BATCH);
      // What the batch's devices hold, read on the pool while the snapshot reads Central's tables.
      const holding = heldByDevice(
        pool,
        batch.flatMap((l) => locations.get(l) ?? []),
      );
      const current = await readCurrent(client, model, batch, locations);
      const held = await holding;
      for (const [device, tables] of current) {
        devices++;
        const holds = held.get(device);
        if (!holds) firstSyncs++;
        else if (addDevice(sums, holds, tables, known)) reached++;
      }
    }
  });
  return {
    devices,
    reached,
    firstSyncs,
    tables: [...sums.values()],
    tookMs: Math.round(performance.now() - started),
  };
}

async function inSnapshot(pool: Pool, work: (client: PoolClient) => Promise<void>): Promise<void> {
  const client = await pool.connect();
  try {
    await setOwnRowIds(client, []);
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await work(client);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** Every device of these locations, with the tables Central holds for it now. */
async function readCurrent(
  client: PoolClient,
  model: DataModel,
  batch: readonly string[],
  locations: ReadonlyMap<string, readonly string[]>,
): Promise<Map<string, Current[]>> {
  await setLocationsAndReadVersions(client, batch);
  const shared: Current[][] = batch.map(() => []);
  const bytes = batch.map(() => new Map<string, number>());
  await hashLocations(
    client,
    model,
    batch.length,
    (i, def, digest, pieces) =>
      shared[i]!.push({ digest, pieces: pieces.map((p) => ({ ...p, bytes: bytes[i]!.get(p.id) ?? 0 })) }),
    (i) => (_, piece, rows) =>
      bytes[i]!.set(
        piece.id,
        rows.reduce((n, r) => n + r.length, 0),
      ),
  );
  const own = await ownRows(
    client,
    model,
    batch.flatMap((l) => locations.get(l) ?? []),
  );
  const out = new Map<string, Current[]>();
  batch.forEach((location, i) => {
    for (const device of locations.get(location) ?? []) {
      const mine = own.get(device)!;
      out.set(
        device,
        model.tables.map((d) =>
          d.name === 'devices' ? mine : shared[i]!.find((c) => c.digest.name === d.name)!,
        ),
      );
    }
  });
  return out;
}

/** Each device's own row, the `devices` part of its scope, hashed alone. */
async function ownRows(
  client: PoolClient,
  model: DataModel,
  ids: readonly string[],
): Promise<Map<string, Current>> {
  const def = model.tables.find((d) => d.name === 'devices')!;
  await setOwnRowIds(client, ids);
  const out = new Map<string, Current>();
  let text = '';
  for await (const chunk of copyOwnRows(client, def)) text += (chunk as Buffer).toString();
  for (const line of text.split('\n').filter(Boolean)) {
    const row = `${line.slice(0, line.lastIndexOf('\t'))}\n`;
    const hasher = new TableHasher(def);
    hasher.write(row);
    const digest = hasher.digest();
    out.set(line.slice(0, line.indexOf('\t')), { digest, pieces: [] });
  }
  for (const id of ids) if (!out.has(id)) out.set(id, { digest: new TableHasher(def).digest(), pieces: [] });
  return out;
}

function emptySum(table: string): PreviewTable {
  return { table, devices: 0, rowsAdded: 0, rowsRemoved: 0, rowsChanged: 0, bytes: 0 };
}

/** Adds one device's change to the sums; true when it changes anything. */
function addDevice(
  sums: Map<string, PreviewTable>,
  holds: readonly TableDigest[],
  current: readonly Current[],
  known: KnownPieces | undefined,
): boolean {
  let changes = false;
  for (const c of current) {
    const h = holds.find((t) => t.name === c.digest.name);
    if (!h || h.sha256 === c.digest.sha256) continue;
    changes = true;
    const sum = sums.get(c.digest.name)!;
    const d = diffTable(h, c, known?.(h));
    sum.devices++;
    sum.rowsAdded += d.added;
    sum.rowsRemoved += d.removed;
    sum.rowsChanged = sum.rowsChanged === null || d.changed === null ? null : sum.rowsChanged + d.changed;
    sum.bytes += d.bytes;
  }
  return changes;
}

/**
 * One table's change for one device. With the pieces it holds: the pieces it would fetch
 * (whose id or lower bound differ, as the edge's planLoad decides), their rows less those
 * added, and their bytes. Without: its rows changed unknown, the whole table's bytes.
 */
export function diffTable(
  held: TableDigest,
  next: Current,
  heldPieces: readonly Piece[] | undefined,
): { added: number; removed: number; changed: number | null; bytes: number } {
  const added = Math.max(0, next.digest.rowCount - held.rowCount);
  const removed = Math.max(0, held.rowCount - next.digest.rowCount);
  if (!heldPieces)
    return { added, removed, changed: null, bytes: next.pieces.reduce((n, p) => n + p.bytes, 0) };
  const bound = (list: readonly Piece[], j: number) => `${j === 0 ? '' : list[j - 1]!.last}|${list[j]!.id}`;
  const had = new Set(heldPieces.map((_, j) => bound(heldPieces, j)));
  const fetched = next.pieces.filter((_, j) => !had.has(bound(next.pieces, j)));
  const rows = fetched.reduce((n, p) => n + p.rows, 0);
  return {
    added,
    removed,
    changed: Math.max(0, rows - added),
    bytes: fetched.reduce((n, p) => n + p.bytes, 0),
  };
}
