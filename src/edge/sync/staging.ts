/**
 * Staging (edge_staged_pieces): verified pieces kept across a load that failed, so the next
 * try fetches only what is still missing. A load that goes well stages nothing: each piece
 * goes from the wire into COPY and is written once. Only when a load fails after pieces
 * arrived (a transfer that could not be resumed, a manifest that expired) are they read back
 * out of the load's transaction, before it rolls back, cut at their row counts and staged
 * where they hash to their ids.
 */
import { pieceId, toRuns } from '../../contract/pieces.ts';
import type { Piece } from '../../contract/pieces.ts';
import type { Pool, PoolClient } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { copyKeyRange, readStaged, stagePieces, type StagedPiece } from '../repo/pieces.ts';
import type { TablePlan } from './plan.ts';

/** Spilled pieces are written to staging in batches of about this size. */
const STAGE_BATCH_BYTES = 1 << 20;
const NEWLINE = 0x0a;

/** The staged pieces `ids`, in order. */
export async function* readBack(pool: Pool, ids: readonly string[]): AsyncGenerator<Buffer> {
  const found = await readStaged(pool, ids);
  for (const id of ids) {
    const data = found.get(id);
    if (!data) throw new AppError('LOAD_FAILED', `staged piece ${id} is missing`);
    yield data;
  }
}

export interface Spilled {
  staged: number;
  /** Read back with other bytes than Central sent (so not staged: fetched again next time). */
  differed: number;
}

/**
 * Before the failed load's ROLLBACK, on its connection: the pieces in `received` (loaded by
 * it, not staged) read back by key range and staged through `pool`, so they outlive it.
 */
export async function spill(
  tx: PoolClient,
  pool: Pool,
  plan: readonly TablePlan[],
  received: ReadonlySet<string>,
): Promise<Spilled> {
  const out: Spilled = { staged: 0, differed: 0 };
  let batch: StagedPiece[] = [];
  let bytes = 0;
  // A write that fails must not stop a COPY midway (its connection would wait for the rest):
  // staging stops, the reads go to their end, and the failure is raised after them.
  let failed: unknown;
  const write = async (pieces: StagedPiece[]) => {
    if (failed === undefined) await stagePieces(pool, pieces).catch((err: unknown) => (failed = err));
  };
  for (const t of plan) {
    const got = t.load.filter((j) => received.has(t.pieces[j]!.id));
    for (const [from, to] of toRuns(got)) {
      const pieces = t.pieces.slice(from, to + 1);
      const rows = await copyKeyRange(
        tx,
        t.def,
        from === 0 ? null : t.pieces[from - 1]!.last,
        pieces.at(-1)!.last,
      );
      let k = 0;
      for await (const chunks of byRows(rows, pieces)) {
        const piece = pieces[k++]!;
        if (pieceId(chunks) !== piece.id) {
          out.differed++;
          continue;
        }
        const data = Buffer.concat(chunks);
        batch.push({ id: piece.id, table: t.def.name, rows: piece.rows, data });
        bytes += data.length;
        out.staged++;
        if (bytes >= STAGE_BATCH_BYTES) {
          await write(batch);
          [batch, bytes] = [[], 0];
        }
      }
      out.differed += pieces.length - k;
    }
  }
  await write(batch);
  if (failed !== undefined) throw failed;
  return out;
}

/** COPY text cut after each piece's row count: one list of chunks per piece, in order. */
async function* byRows(source: AsyncIterable<Buffer>, pieces: readonly Piece[]): AsyncGenerator<Buffer[]> {
  let k = 0;
  let need = pieces[0]?.rows ?? 0;
  let parts: Buffer[] = [];
  for await (const data of source) {
    let chunk = data as Buffer;
    let pos = 0;
    while (k < pieces.length) {
      const nl = chunk.indexOf(NEWLINE, pos);
      if (nl < 0) break;
      pos = nl + 1;
      if (--need > 0) continue;
      parts.push(chunk.subarray(0, pos));
      yield parts;
      [parts, chunk, pos] = [[], chunk.subarray(pos), 0];
      need = pieces[++k]?.rows ?? 0;
    }
    if (k < pieces.length && chunk.length > 0) parts.push(chunk);
  }
}
