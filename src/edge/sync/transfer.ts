/**
 * Getting the pieces a plan loads. The usual way is one fetch read straight into the load (or,
 * on a first sync, the pieces Central sent in the snapshot answer, read the same way):
 * each piece checked against its id as it arrives, handed to COPY and kept in staging on the
 * way (written on another connection, so the load does not wait for it). If that fetch breaks
 * (a cut, a stall, a piece that fails its hash), the load is rolled back and the rest is
 * fetched into staging, resuming after each cut with what is still missing while the manifest
 * is valid; the load then reads every piece back from staging.
 */
import { pieceId, toRuns } from '../../contract/pieces.ts';
import {
  readPieces,
  SnapshotFormatError,
  type PiecesItem,
  type SnapshotItem,
} from '../../contract/snapshot-reader.ts';
import type { Manifest } from '../../contract/wire.ts';
import type { Pool } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import { deleteStaged, pruneStaged, stagedAmong } from '../repo/pieces.ts';
import type { ManifestClock } from './manifest-clock.ts';
import { centralCodeOf } from './client-errors.ts';
import type { CentralClient } from './client.ts';
import { reasonOf } from './errors.ts';
import type { PieceSource } from './load.ts';
import type { TablePlan } from './plan.ts';
import { StagingWriter } from './staging.ts';
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
 * backoff at the default delay); any progress starts the count again, so a link cut every
 * few seconds still finishes, and a Central that is gone fails the sync in seconds.
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
  readonly #staging: StagingWriter;
  #staged = new Set<string>();
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
    this.#staging = new StagingWriter(deps.pool);
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

  /** The bytes of `t`'s pieces to load, in order: staged ones read back, the others off the fetch. */
  async *rows(t: TablePlan): AsyncGenerator<Buffer> {
    const run: string[] = [];
    for (const j of t.load) {
      const piece = t.pieces[j]!;
      if (!this.#items || (!this.#inline && this.#staged.has(piece.id))) {
        run.push(piece.id);
        if (run.length >= READ_BATCH) yield* this.#staging.readBack(run.splice(0));
        continue;
      }
      if (run.length > 0) yield* this.#staging.readBack(run.splice(0));
      yield await this.#take(t, j);
    }
    if (run.length > 0) yield* this.#staging.readBack(run);
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

  /** Ends the fetch, if one is open, and writes what was verified to staging. */
  async close(): Promise<void> {
    this.#items = undefined;
    this.#inline = false;
    await this.#body?.return(undefined).catch(() => undefined);
    this.#body = undefined;
    await this.#staging.written();
  }

  /** After the commit: the staged pieces it loaded are no longer needed. */
  clear(): Promise<void> {
    return deleteStaged(this.#deps.pool, this.#ids());
  }

  /** Whether a failed load may go on by fetching the rest into staging. */
  resumable(err: unknown): boolean {
    if (err instanceof BadPiece || err instanceof SnapshotFormatError) return true;
    if (!(err instanceof AppError)) return false;
    if (err.code === 'TRANSFER_CUT' || err.code === 'CENTRAL_UNREACHABLE') return true;
    return reasonOf(err) === 'STALLED';
  }

  /** Every piece still missing, fetched into staging; a cut fetch is asked again for what it did not bring. */
  async resume(): Promise<void> {
    let failures = 0;
    for (;;) {
      const want = this.#wanted();
      if (Object.keys(want).length === 0) return;
      const before = this.#stats.piecesFetched;
      try {
        await this.open();
        for await (const item of this.#items!) {
          if (item.type === 'end') break;
          const t = this.#plan.find((p) => p.def.name === item.frame.table);
          if (!t) throw new AppError('SNAPSHOT_INVALID', `Central sent a piece of ${item.frame.table}`);
          await this.#accept(t, item).catch((err: unknown) => {
            if (!(err instanceof BadPiece)) throw err;
          });
        }
        await this.close();
      } catch (err) {
        await this.close();
        const progressed = this.#stats.piecesFetched > before;
        failures = progressed ? 0 : failures + 1;
        if (!this.resumable(err) || failures >= MAX_FAILURES) throw asTransferError(err);
        const delay = progressed ? 0 : Math.min(this.#deps.resumeDelayMs * 2 ** (failures - 1), 15_000);
        if (Date.now() + delay >= this.#deps.deadlineAt) throw asTransferError(err);
        this.#deps.log.warn(
          { event: 'sync.resume', err, fetched: this.#stats.piecesFetched, delayMs: delay },
          'transfer broke; resuming with the pieces still missing',
        );
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  #ids(): string[] {
    return this.#plan.flatMap((t) => t.load.map((j) => t.pieces[j]!.id));
  }

  #wanted(): Record<string, [number, number][]> {
    const want: Record<string, [number, number][]> = {};
    for (const t of this.#plan) {
      const missing = t.load.filter((j) => !this.#staged.has(t.pieces[j]!.id));
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

  /** A piece off the wire: checked against its id, then staged (in the background) and returned. */
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
    const data = Buffer.concat(chunks, bytes);
    this.#staged.add(piece.id);
    this.#stats.pieceFetched();
    await this.#staging.add({ id: piece.id, table: frame.table, rows: piece.rows, data });
    return data;
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

function asTransferError(err: unknown): unknown {
  if (err instanceof SnapshotFormatError || err instanceof BadPiece)
    return new AppError('TRANSFER_CUT', `the pieces stream broke: ${err.message}`, { cause: err });
  return err;
}
