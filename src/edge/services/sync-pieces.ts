/**
 * What a manifest's pieces mean for this edge (the plan), and getting the ones it lacks
 * (the fetch). A table is kept (its hash matches what the edge holds), patched (delta: only
 * its changed pieces' key ranges are replaced; the held pieces say which) or reloaded (full).
 * Pieces are fetched into staging, each checked against its id, and a cut transfer is
 * resumed with what is still missing while the manifest is valid and the sync has time.
 */
import type { TableDigest } from '../../contract/canonical.ts';
import type { DataModel } from '../../contract/data-model.ts';
import { pieceFromWire, pieceId, toRuns, type Piece } from '../../contract/pieces.ts';
import { readPieces, SnapshotFormatError } from '../../contract/snapshot-reader.ts';
import type { TableDef } from '../../contract/tables.ts';
import type { Manifest } from '../../contract/wire.ts';
import type { Pool } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import { pruneStaged, stagedAmong, stagePieces, type HeldPieces, type StagedPiece } from '../repo/pieces.ts';
import type { CentralClient } from './central-client.ts';
import { counted, type Transfer } from './sync-load.ts';

export interface TablePlan {
  def: TableDef;
  expected: TableDigest;
  mode: 'keep' | 'full' | 'delta';
  /** The table's pieces per the manifest (empty when kept). */
  pieces: Piece[];
  /** Indexes of the pieces to load: all of them (full) or the changed ones (delta). */
  load: number[];
}

export interface TransferStats {
  fetches: number;
  piecesFetched: number;
  piecesReused: number;
  piecesKept: number;
  piecesRefetched: number;
  rowsDeleted: number;
}

/**
 * `held`: the pieces of the tables as this edge holds them, or undefined when what it holds
 * is in doubt or cannot be patched (every changed table is then reloaded whole).
 */
export function planLoad(
  m: Manifest,
  model: DataModel,
  heldTables: readonly TableDigest[] | undefined,
  held: ReadonlyMap<string, HeldPieces> | undefined,
): TablePlan[] {
  return model.tables.map((def, i) => {
    const expected = m.tables[i]!;
    const wire = m.pieces?.[def.name];
    const holds = heldTables?.find((t) => t.name === def.name);
    if (!wire) {
      if (holds?.sha256 !== expected.sha256)
        throw new AppError(
          'SNAPSHOT_INVALID',
          `manifest lists no pieces for ${def.name}, which this edge lacks`,
        );
      return { def, expected, mode: 'keep', pieces: [], load: [] };
    }
    const pieces = checkedPieces(def, expected, wire);
    const mine = held?.get(def.name);
    if (!mine || !holds || mine.tableSha256 !== holds.sha256 || pieces.length === 0)
      return { def, expected, mode: 'full', pieces, load: pieces.map((_, j) => j) };
    // Unchanged: same id and same lower bound, so the rows held in its range are exactly its rows.
    const same = new Set(mine.pieces.map((p, j) => `${j === 0 ? '' : mine.pieces[j - 1]!.last}|${p.id}`));
    const load = pieces.flatMap((p, j) =>
      same.has(`${j === 0 ? '' : pieces[j - 1]!.last}|${p.id}`) ? [] : [j],
    );
    return { def, expected, mode: 'delta', pieces, load };
  });
}

function checkedPieces(def: TableDef, expected: TableDigest, wire: NonNullable<Manifest['pieces']>[string]) {
  const pieces = wire.map(pieceFromWire);
  const rows = pieces.reduce((n, p) => n + p.rows, 0);
  const ordered = pieces.every((p, j) => j === 0 || p.last > pieces[j - 1]!.last);
  const width = def.primaryKey.length;
  if (rows !== expected.rowCount || !ordered || pieces.some((p) => p.last.split('\t').length !== width))
    throw new AppError(
      'SNAPSHOT_INVALID',
      `the pieces of ${def.name} do not describe its ${expected.rowCount} rows`,
    );
  return pieces;
}

export interface FetchDeps {
  pool: Pool;
  central: CentralClient;
  mac: string;
  log: Logger;
  deadlineAt: number;
  /** Pause before asking again after a fetch that brought nothing; doubled each time. */
  resumeDelayMs: number;
}

/**
 * Fetches that may fail in a row, bringing nothing, before the sync gives up (about 15 s of
 * backoff at the default delay); any progress starts the count again, so a link cut every
 * few seconds still finishes, and a Central that is gone fails the sync in seconds.
 */
const MAX_FETCHES = 5;
/** A piece whose bytes fail its id this often is not a link's accident. */
const MAX_BAD_COPIES = 3;
/** Verified pieces are written to staging in batches of about this size. */
const STAGE_BATCH_BYTES = 1 << 20;
/** The most bytes of one piece held while it is checked. */
const MAX_PIECE_BYTES = 64 * 2 ** 20;

/** Every piece the plan loads, staged: fetched now unless staging holds it already. */
export async function fetchPieces(
  deps: FetchDeps,
  m: Manifest,
  plan: readonly TablePlan[],
  transfer: Transfer,
  stats: TransferStats,
): Promise<void> {
  const ids = plan.flatMap((t) => t.load.map((j) => t.pieces[j]!.id));
  // Staging holds one manifest's pieces at most: whatever this one does not use goes.
  await pruneStaged(
    deps.pool,
    plan.flatMap((t) => t.pieces.map((p) => p.id)),
  );
  stats.piecesKept = plan.reduce((n, t) => n + (t.mode === 'delta' ? t.pieces.length - t.load.length : 0), 0);
  let staged = await stagedAmong(deps.pool, ids);
  stats.piecesReused = staged.size;
  const bad = new Map<string, number>();
  let failures = 0;
  for (;;) {
    const want = wanted(plan, staged);
    if (Object.keys(want).length === 0) return;
    if (Date.parse(m.expiresAt) <= Date.now())
      throw new AppError(
        'MANIFEST_EXPIRED',
        `manifest ${m.manifestId} expired while its pieces were fetched`,
      );
    stats.fetches++;
    const before = stats.piecesFetched;
    try {
      await fetchOnce(deps, m, plan, want, transfer, stats, bad);
    } catch (err) {
      const progressed = stats.piecesFetched > before;
      failures = progressed ? 0 : failures + 1;
      if (!resumable(err) || failures >= MAX_FETCHES) throw asTransferError(err);
      const delay = progressed ? 0 : Math.min(deps.resumeDelayMs * 2 ** (failures - 1), 15_000);
      if (Date.now() + delay >= deps.deadlineAt) throw asTransferError(err);
      deps.log.warn(
        { event: 'sync.resume', err, fetched: stats.piecesFetched, delayMs: delay },
        'transfer broke; resuming with the pieces still missing',
      );
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
    staged = await stagedAmong(deps.pool, ids);
  }
}

function wanted(plan: readonly TablePlan[], staged: ReadonlySet<string>): Record<string, [number, number][]> {
  const want: Record<string, [number, number][]> = {};
  for (const t of plan) {
    const missing = t.load.filter((j) => !staged.has(t.pieces[j]!.id));
    if (missing.length > 0) want[t.def.name] = toRuns(missing);
  }
  return want;
}

/** One call of /pieces: each piece checked against its id and staged; the rest stay missing. */
async function fetchOnce(
  deps: FetchDeps,
  m: Manifest,
  plan: readonly TablePlan[],
  want: Record<string, [number, number][]>,
  transfer: Transfer,
  stats: TransferStats,
  bad: Map<string, number>,
): Promise<void> {
  const body = await deps.central.requestPieces(
    { mac: deps.mac, manifestId: m.manifestId, want },
    {},
    deps.deadlineAt,
  );
  let batch: StagedPiece[] = [];
  let batchBytes = 0;
  const flush = async () => {
    await stagePieces(deps.pool, batch);
    stats.piecesFetched += batch.length;
    [batch, batchBytes] = [[], 0];
  };
  try {
    for await (const item of readPieces(counted(body, transfer))) {
      if (item.type === 'end') break;
      const { frame } = item;
      const t = plan.find((p) => p.def.name === frame.table);
      const piece = t?.pieces[frame.index];
      if (!piece)
        throw new AppError(
          'SNAPSHOT_INVALID',
          `Central sent ${frame.table} piece ${frame.index}, not asked for`,
        );
      if (frame.gone)
        throw new AppError(
          'MANIFEST_SUPERSEDED',
          `${frame.table} piece ${frame.index} of manifest ${m.manifestId} changed on Central`,
        );
      const chunks: Buffer[] = [];
      let bytes = 0;
      for await (const chunk of item.rows) {
        bytes += chunk.length;
        if (bytes > MAX_PIECE_BYTES)
          throw new AppError('SNAPSHOT_INVALID', `${frame.table} piece ${frame.index} is too large`);
        chunks.push(chunk);
      }
      if (frame.rowCount !== piece.rows || pieceId(chunks) !== piece.id) {
        // Fetched again with the rest; a piece that keeps failing is no accident of the link.
        const times = (bad.get(piece.id) ?? 0) + 1;
        bad.set(piece.id, times);
        stats.piecesRefetched++;
        deps.log.warn(
          { event: 'sync.piece_bad', table: frame.table, index: frame.index },
          'piece failed its hash',
        );
        if (times >= MAX_BAD_COPIES)
          throw new AppError(
            'SNAPSHOT_INVALID',
            `${frame.table} piece ${frame.index} failed its hash ${times} times`,
          );
        continue;
      }
      batch.push({ id: piece.id, table: frame.table, rows: piece.rows, data: Buffer.concat(chunks, bytes) });
      batchBytes += bytes;
      if (batchBytes >= STAGE_BATCH_BYTES) await flush();
    }
  } finally {
    // What was verified before a cut is kept: the next fetch does not ask for it again.
    await flush();
    await body.return(undefined).catch(() => undefined);
  }
}

const RESUMABLE = new Set(['TRANSFER_CUT', 'CENTRAL_UNREACHABLE', 'SNAPSHOT_INVALID']);

/** A broken, stalled or truncated transfer; not a refusal, a bad piece or the deadline. */
function resumable(err: unknown): boolean {
  if (err instanceof SnapshotFormatError) return true;
  if (!(err instanceof AppError) || !RESUMABLE.has(err.code)) return false;
  return err.code !== 'SNAPSHOT_INVALID' || err.message.startsWith('no data from Central');
}

function asTransferError(err: unknown): unknown {
  if (err instanceof SnapshotFormatError)
    return new AppError('TRANSFER_CUT', `the pieces stream ended early: ${err.message}`, { cause: err });
  return err;
}
