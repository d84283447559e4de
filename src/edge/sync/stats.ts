/**
 * A sync's statistics, with one writer: the transfer and the load tell it what happened by
 * its methods, and the result, the ledger row and the ack read it. Its counts are the
 * SyncResult's `transfer` (model.ts).
 */
import { createHash } from 'node:crypto';

export interface TransferStats {
  fetches: number;
  piecesFetched: number;
  piecesReused: number;
  piecesKept: number;
  piecesRefetched: number;
  rowsDeleted: number;
}

export class SyncStats {
  readonly #counts: TransferStats = {
    fetches: 0,
    piecesFetched: 0,
    piecesReused: 0,
    piecesKept: 0,
    piecesRefetched: 0,
    rowsDeleted: 0,
  };
  /** The snapshot answer's bytes are hashed: the hash is the ack's and the ledger's payloadSha256. */
  readonly #answerHash = createHash('sha256');
  #answerBytes = 0;
  #pieceBytes = 0;

  /** The snapshot answer (pieces sent inline included) as it arrives: counted and hashed. */
  async *answer(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      this.#answerBytes += chunk.byteLength;
      this.#answerHash.update(chunk);
      yield chunk;
    }
  }

  /** A pieces answer as it arrives: counted only. */
  async *pieces(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      this.#pieceBytes += chunk.byteLength;
      yield chunk;
    }
  }

  /** What staging and the plan hold before any fetch: pieces found staged, and pieces kept in place. */
  found(reused: number, kept: number): void {
    this.#counts.piecesReused = reused;
    this.#counts.piecesKept = kept;
  }

  fetchStarted(): void {
    this.#counts.fetches++;
  }

  pieceFetched(): void {
    this.#counts.piecesFetched++;
  }

  pieceRefetched(): void {
    this.#counts.piecesRefetched++;
  }

  rowsDeleted(n: number): void {
    this.#counts.rowsDeleted += n;
  }

  get piecesFetched(): number {
    return this.#counts.piecesFetched;
  }

  get bytesReceived(): number {
    return this.#answerBytes + this.#pieceBytes;
  }

  payloadSha256(): string {
    return this.#answerHash.copy().digest('hex');
  }

  counts(): TransferStats {
    return { ...this.#counts };
  }
}
