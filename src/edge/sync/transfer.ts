/**
 * Getting the pieces a plan loads. The usual way is one fetch read straight into the load (or,
 * on a first sync, the pieces Central sent in the snapshot answer, read the same way): each
 * piece checked against its id as it arrives and handed to COPY, written once. If that fetch
 * breaks (a cut, a stall, a piece that fails its hash), the load waits in its transaction
 * while the transfer asks again for what has not arrived, after each cut, while the manifest
 * is valid, and the load goes on from there: nothing that arrived is fetched twice. If it
 * cannot go on, the table's rows end at the last whole piece, the load fails, and what arrived
 * is spilled to staging (staging.ts) before the rollback, for the next try.
 */
import { pieceId, toRuns } from '../../contract/pieces.ts';
import {
  readPieces,
  SnapshotFormatError,
  type PiecesItem,
  type SnapshotItem,
} from '../../contract/snapshot-reader.ts';
import type { Manifest } from '../../contract/wire.ts';
import type { Pool, PoolClient } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import { deleteStaged, pruneStaged, stagedAmong } from '../repo/pieces.ts';
import type { ManifestClock } from './manifest-clock.ts';
import { centralCodeOf, circuitWaitMs } from './client-errors.ts';
import type { CentralClient } from './client.ts';
import { reasonOf } from './errors.ts';
import type { PieceSource } from './load.ts';
import type { TablePlan } from './plan.ts';
import { readBack, spill, type Spilled } from './staging.ts';
import type { SyncStats } from './stats.ts';

export interface TransferDeps {
  pool: Pool;
  central: CentralClient;
  mac: string;
  log: Logger;
  deadlineAt: number;
  /** The manifest's lifetime, on Central's clock. */
  clock: ManifestClock;
  /** Pause before asking again after a fetch that brought nothing; doubled each time. */
  resumeDelayMs: number;
}

/**
 * Fetches that may fail in a row, bringing nothing, before the sync gives up (about 15 s of
 * backoff at the default delay, longer when the client's circuit opens: each try then waits
 * for the circuit's one call); any progress starts the count again, so a link cut every few
 * seconds still finishes, and a Central that refuses connections fails the sync in about a
 * minute (one that does not answer at all, within SYNC_DEADLINE_SECONDS).
 */
const MAX_FAILURES = 5;
/** A piece whose bytes fail its id this often is not a link's accident. */
const MAX_BAD_COPIES = 3;
/** Staged pieces read back per query. */
const READ_BATCH = 16;
/** The most bytes of one piece held while it is checked. */
const MAX_PIECE_BYTES = 64 * 2 ** 20;

/** A piece that failed its hash: fetched again by the resume, like a cut. */
class BadPiece extends Error {}

export class PieceTransfer implements PieceSource {
  readonly #deps: TransferDeps;
  readonly #m: Manifest;
  readonly #plan: readonly TablePlan[];
  readonly #stats: SyncStats;
  #staged = new Set<string>();
  /** Pieces that arrived in this sync and went into the load (not staged). */
  readonly #received = new Set<string>();
  /** Why the rows stopped early: the load fails with it once the table's COPY has ended. */
  #broken: unknown;
  /** Fetches in a row that brought nothing, and the count of pieces when the last one opened. */
  #failures = 0;
  #mark = 0;
  readonly #bad = new Map<string, number>();
  #body: AsyncGenerator<Uint8Array> | undefined;
  #items: AsyncGenerator<PiecesItem> | undefined;
  /** `#items` are the pieces sent in the snapshot answer (its body is the sync's to close). */
  #inline = false;

  constructor(deps: TransferDeps, m: Manifest, plan: readonly TablePlan[], stats: SyncStats) {
    this.#deps = deps;
    this.#m = m;
    this.#plan = plan;
    this.#stats = stats;
  }

  /** Staging cut down to this manifest's pieces (it never holds more than one scope), and what it has. */
  async prepare(): Promise<void> {
    await pruneStaged(
      this.#deps.pool,
      this.#plan.flatMap((t) => t.pieces.map((p) => p.id)),
    );
    this.#staged = await stagedAmong(this.#deps.pool, this.#ids());
    this.#stats.found(
      this.#staged.size,
      this.#plan.reduce((n, t) => n + (t.mode === 'delta' ? t.pieces.length - t.load.length : 0), 0),
    );
  }

  /**
   * Asks for every piece not staged; `rows` reads the answer as the load goes. Pieces Central
   * sent inline are read instead when they are what the plan loads: every piece of every table
   * (the edge asked for them holding nothing); staged copies are then not read back.
   */
  async open(inline?: AsyncGenerator<PiecesItem>): Promise<void> {
    if (inline && this.#plan.every((t) => t.load.length === t.pieces.length)) {
      this.#items = inline;
      this.#inline = true;
      return;
    }
    const want = this.#wanted();
    if (Object.keys(want).length === 0) return;
    this.#checkExpiry();
    this.#mark = this.#stats.piecesFetched;
    this.#stats.fetchStarted();
    this.#body = await this.#deps.central
      .requestPieces({ mac: this.#deps.mac, manifestId: this.#m.manifestId, want }, {}, this.#deps.deadlineAt)
      .catch((err: unknown) => {
        // Central judges the lifetime on its own clock, which may end it a round trip before
        // the edge's count from arrival does: the same expiry, named as such.
        if (centralCodeOf(err) === 'MANIFEST_EXPIRED')
          throw new AppError(
            'MANIFEST_EXPIRED',
            `manifest ${this.#m.manifestId} expired while its pieces were fetched (Central refused them)`,
            { cause: err },
          );
        throw err;
      });
    this.#items = readPieces(this.#stats.pieces(this.#body));
  }

  /**
   * The bytes of `t`'s pieces to load, in order: staged ones read back, the others off the
   * fetch, which is opened again after a break. If it cannot be, the rows end at the last
   * whole piece and `check` throws why, so the COPY ends cleanly and what arrived can spill.
   */
  async *rows(t: TablePlan): AsyncGenerator<Buffer> {
    const run: string[] = [];
    for (const j of t.load) {
      const piece = t.pieces[j]!;
      if (!this.#items || (!this.#inline && this.#staged.has(piece.id))) {
        run.push(piece.id);
        if (run.length >= READ_BATCH) yield* readBack(this.#deps.pool, run.splice(0));
        continue;
      }
      if (run.length > 0) yield* readBack(this.#deps.pool, run.splice(0));
      const data = await this.#piece(t, j);
      if (!data) return;
      yield data;
    }
    if (run.length > 0) yield* readBack(this.#deps.pool, run);
  }

  /** After a table's COPY: the reason its rows ended early, if they did. */
  check(): void {
    if (this.#broken !== undefined) throw this.#broken;
  }

  /** Before a failed load's ROLLBACK: what arrived, staged for the next try. */
  async spill(tx: PoolClient): Promise<Spilled> {
    if (this.#received.size === 0) return { staged: 0, differed: 0 };
    return await spill(tx, this.#deps.pool, this.#plan, this.#received);
  }

  /** Once the load has taken every piece: the fetch must end there. */
  async finish(): Promise<void> {
    const items = this.#items;
    if (!items) return;
    const last = await items.next().catch(() => undefined); // a cut after the last piece lost nothing
    if (last && !last.done && last.value.type !== 'end')
      throw new AppError('SNAPSHOT_INVALID', 'Central sent pieces that were not asked for');
    await this.close();
  }

  /** Ends the fetch, if one is open. */
  async close(): Promise<void> {
    this.#items = undefined;
    this.#inline = false;
    await this.#body?.return(undefined).catch(() => undefined);
    this.#body = undefined;
  }

  /** After the commit: the staged pieces it loaded are no longer needed. */
  clear(): Promise<void> {
    return deleteStaged(this.#deps.pool, this.#ids());
  }

  /** Piece `j` of `t`, off the fetch, opened again after each break; undefined once it cannot be. */
  async #piece(t: TablePlan, j: number): Promise<Buffer | undefined> {
    const { id } = t.pieces[j]!;
    for (;;) {
      try {
        return await this.#take(t, j);
      } catch (err) {
        try {
          await this.#reopen(err);
        } catch (final) {
          this.#broken = asTransferError(final);
          return undefined;
        }
        // Cut among pieces sent inline, which staging did not replace: the fetch that follows
        // leaves out what is staged, this piece too.
        if (this.#staged.has(id)) {
          for await (const data of readBack(this.#deps.pool, [id])) return data;
        }
      }
    }
  }

  /**
   * After a fetch broke with `err`: a new fetch of what has not arrived, after a pause that
   * grows while fetches bring nothing; throws when the break is not the link's, when too many
   * fetches in a row brought nothing, or when the sync's time would run out.
   */
  async #reopen(err: unknown): Promise<void> {
    for (;;) {
      await this.close();
      if (!resumable(err)) throw err;
      const progressed = this.#stats.piecesFetched > this.#mark;
      this.#failures = progressed ? 0 : this.#failures + 1;
      if (this.#failures >= MAX_FAILURES) throw err;
      const backoff = progressed ? 0 : Math.min(this.#deps.resumeDelayMs * 2 ** (this.#failures - 1), 15_000);
      // A try while the client's circuit is open would not reach Central: wait for its probe,
      // so a Central restarting for a few seconds costs a pause, not the sync.
      const delay = Math.max(backoff, circuitWaitMs(err));
      if (Date.now() + delay >= this.#deps.deadlineAt) throw err;
      this.#deps.log.warn(
        { event: 'sync.resume', err, fetched: this.#stats.piecesFetched, delayMs: delay },
        'transfer broke; the load waits while the pieces still missing are asked for',
      );
      await new Promise((resolve) => setTimeout(resolve, delay));
      try {
        await this.open();
        return;
      } catch (next) {
        err = next;
      }
    }
  }

  #ids(): string[] {
    return this.#plan.flatMap((t) => t.load.map((j) => t.pieces[j]!.id));
  }

  #wanted(): Record<string, [number, number][]> {
    const want: Record<string, [number, number][]> = {};
    for (const t of this.#plan) {
      const missing = t.load.filter((j) => {
        const id = t.pieces[j]!.id;
        return !this.#staged.has(id) && !this.#received.has(id);
      });
      if (missing.length > 0) want[t.def.name] = toRuns(missing);
    }
    return want;
  }

  #checkExpiry(): void {
    this.#deps.clock.check('while its pieces were fetched');
  }

  /** The next piece of the open fetch, which must be piece `j` of `t`. */
  async #take(t: TablePlan, j: number): Promise<Buffer> {
    const next = await this.#items!.next();
    if (next.done || next.value.type !== 'piece')
      throw new SnapshotFormatError(`the pieces stream ended before ${t.def.name} piece ${j}`);
    const { frame } = next.value;
    if (frame.table !== t.def.name || frame.index !== j)
      throw new AppError(
        'SNAPSHOT_INVALID',
        `Central sent ${frame.table} piece ${frame.index}, not ${t.def.name} piece ${j}`,
      );
    return this.#accept(t, next.value);
  }

  /** A piece off the wire: checked against its id, counted as received, and returned. */
  async #accept(t: TablePlan, item: Extract<PiecesItem, { type: 'piece' }>): Promise<Buffer> {
    const { frame } = item;
    const piece = t.pieces[frame.index];
    if (!piece)
      throw new AppError(
        'SNAPSHOT_INVALID',
        `Central sent ${frame.table} piece ${frame.index}, not asked for`,
      );
    if (frame.gone)
      throw new AppError(
        'MANIFEST_SUPERSEDED',
        `${frame.table} piece ${frame.index} of manifest ${this.#m.manifestId} changed on Central`,
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
      const times = (this.#bad.get(piece.id) ?? 0) + 1;
      this.#bad.set(piece.id, times);
      this.#stats.pieceRefetched();
      this.#deps.log.warn(
        { event: 'sync.piece_bad', table: frame.table, index: frame.index },
        'piece failed its hash',
      );
      if (times >= MAX_BAD_COPIES)
        throw new AppError(
          'SNAPSHOT_INVALID',
          `${frame.table} piece ${frame.index} failed its hash ${times} times`,
        );
      throw new BadPiece(`${frame.table} piece ${frame.index} failed its hash`);
    }
    this.#received.add(piece.id);
    this.#stats.pieceFetched();
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes);
  }
}

/**
 * The pieces Central sent after the manifest (docs/protocol.md, "Inline pieces"), to be read
 * as a piece fetch's answer (PieceTransfer.open); undefined when it sent none (the rest of
 * `items` is then the caller's to drain). After a piece frame, the reader yields only pieces
 * and their end line.
 */
export async function inlinePieces(
  items: AsyncGenerator<SnapshotItem>,
): Promise<AsyncGenerator<PiecesItem> | undefined> {
  let next: IteratorResult<SnapshotItem>;
  try {
    next = await items.next();
  } catch (err) {
    // Cut after the manifest: the transfer meets the error as a cut fetch, and resumes by /pieces.
    return failing(err);
  }
  if (next.done) return undefined;
  const first = next.value;
  if (first.type !== 'piece') return undefined;
  return (async function* () {
    yield first;
    yield* items as AsyncGenerator<PiecesItem>;
  })();
}

async function* failing(err: unknown): AsyncGenerator<PiecesItem> {
  yield* [];
  throw err;
}

/** Whether a transfer that failed with `err` may go on by asking again for what is missing. */
function resumable(err: unknown): boolean {
  if (err instanceof BadPiece || err instanceof SnapshotFormatError) return true;
  if (!(err instanceof AppError)) return false;
  if (err.code === 'TRANSFER_CUT' || err.code === 'CENTRAL_UNREACHABLE') return true;
  return reasonOf(err) === 'STALLED';
}

function asTransferError(err: unknown): unknown {
  if (err instanceof SnapshotFormatError || err instanceof BadPiece)
    return new AppError('TRANSFER_CUT', `the pieces stream broke: ${err.message}`, { cause: err });
  return err;
}
