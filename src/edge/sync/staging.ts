/**
 * Verified pieces written to staging (edge_staged_pieces) on another connection than the
 * load's, so the load does not wait for them, and read back from there when a load runs
 * again after a broken transfer.
 */
import type { Pool } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { readStaged, stagePieces, type StagedPiece } from '../repo/pieces.ts';

/** Verified pieces are written to staging in batches of about this size. */
const STAGE_BATCH_BYTES = 1 << 20;
/** Bytes handed to staging and not yet written, beyond which the transfer waits for the writes. */
const MAX_UNWRITTEN_BYTES = 8 << 20;

export class StagingWriter {
  readonly #pool: Pool;
  #batch: StagedPiece[] = [];
  #batchBytes = 0;
  #writing: Promise<void> = Promise.resolve();
  #unwritten = 0;

  constructor(pool: Pool) {
    this.#pool = pool;
  }

  /** Queues a verified piece; waits only when staging falls behind the link. */
  async add(piece: StagedPiece): Promise<void> {
    this.#batch.push(piece);
    this.#batchBytes += piece.data.length;
    if (this.#batchBytes >= STAGE_BATCH_BYTES) this.flush();
    // Staging slower than the link: wait for it rather than hold the difference in memory.
    if (this.#unwritten > MAX_UNWRITTEN_BYTES) await this.#writing;
  }

  /** Writes the batch on another connection, after the batches before it; a failure surfaces at `written`. */
  flush(): void {
    const [batch, bytes] = [this.#batch, this.#batchBytes];
    [this.#batch, this.#batchBytes] = [[], 0];
    if (batch.length === 0) return;
    this.#unwritten += bytes;
    this.#writing = this.#writing.then(async () => {
      await stagePieces(this.#pool, batch);
      this.#unwritten -= bytes;
    });
    // Surfaced where it is awaited (a wait for staging, the read-back, close). A load that
    // failed for its own reason (its PostgreSQL restarted) may never await it, and an
    // unawaited rejection would end the process: it is marked handled here.
    this.#writing.catch(() => undefined);
  }

  /** Everything queued, written. */
  async written(): Promise<void> {
    this.flush();
    await this.#writing;
  }

  /** The staged pieces `ids`, in order, once everything queued is written. */
  async *readBack(ids: string[]): AsyncGenerator<Buffer> {
    await this.written();
    const found = await readStaged(this.#pool, ids);
    for (const id of ids) {
      const data = found.get(id);
      if (!data) throw new AppError('LOAD_FAILED', `staged piece ${id} is missing`);
      yield data;
    }
  }
}
