/**
 * Reads the snapshot stream (docs/protocol.md) without holding it: frame lines are
 * parsed and validated, table rows are passed on as raw COPY text chunks that end
 * exactly at the table's last row (pieces sent inline, as the pieces stream's are).
 * The consumer must drain each table's rows before asking for the next item.
 */
import { Value } from 'typebox/value';
import {
  EndFrame,
  ManifestFrame,
  PieceFrame,
  PiecesEndFrame,
  TableFrame,
  type Manifest,
  type ManifestSignature,
} from './wire.ts';

export class SnapshotFormatError extends Error {}

/** After the manifest, table frames and their end line, or pieces sent inline and theirs. */
export type SnapshotItem =
  | { type: 'manifest'; manifest: Manifest; signature: ManifestSignature | undefined }
  | { type: 'table'; frame: TableFrame; rows: AsyncGenerator<Buffer> }
  | { type: 'end'; frame: EndFrame }
  | PiecesItem;

/** A manifest lists every piece of a changed scope: about 150 bytes per 256 rows. */
const MAX_FRAME_BYTES = 16 << 20;
const NL = 0x0a;

/** The bytes received and not yet consumed, taken as frame lines or as runs of row lines. */
class StreamBuffer {
  readonly #iterator: AsyncIterator<Uint8Array | string>;
  #buf: Buffer = Buffer.alloc(0);
  #done = false;

  constructor(source: AsyncIterable<Uint8Array | string>) {
    this.#iterator = source[Symbol.asyncIterator]();
  }

  /** Whether any byte is left, reading more when the buffer is empty. */
  async hasMore(): Promise<boolean> {
    return this.#buf.length > 0 || (await this.#more());
  }

  async #more(): Promise<boolean> {
    if (this.#done) return false;
    const next = await this.#iterator.next();
    if (next.done) {
      this.#done = true;
      return false;
    }
    const value = next.value;
    const chunk =
      typeof value === 'string'
        ? Buffer.from(value)
        : Buffer.isBuffer(value)
          ? value
          : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    return true;
  }

  async frameLine(what: string): Promise<unknown> {
    let nl = this.#buf.indexOf(NL);
    while (nl < 0) {
      if (this.#buf.length > MAX_FRAME_BYTES) throw new SnapshotFormatError(`${what} frame is too long`);
      if (!(await this.#more())) throw new SnapshotFormatError(`stream ended before the ${what} frame`);
      nl = this.#buf.indexOf(NL);
    }
    const line = this.#buf.subarray(0, nl).toString('utf8');
    this.#buf = this.#buf.subarray(nl + 1);
    try {
      return JSON.parse(line);
    } catch {
      throw new SnapshotFormatError(`${what} frame is not JSON`);
    }
  }

  /** `count` row lines as chunks of whole or partial lines, ending exactly after the last. */
  async *rows(count: number, table: string): AsyncGenerator<Buffer> {
    let remaining = count;
    while (remaining > 0) {
      if (this.#buf.length === 0 && !(await this.#more())) {
        throw new SnapshotFormatError(`stream ended inside table ${table} (${remaining} rows missing)`);
      }
      let at = -1;
      while (remaining > 0) {
        const nl = this.#buf.indexOf(NL, at + 1);
        if (nl < 0) break;
        at = nl;
        remaining--;
      }
      const end = remaining === 0 ? at + 1 : this.#buf.length;
      const part = this.#buf.subarray(0, end);
      this.#buf = this.#buf.subarray(end);
      yield part;
    }
  }
}

export async function* readSnapshot(
  source: AsyncIterable<Uint8Array | string>,
): AsyncGenerator<SnapshotItem> {
  const stream = new StreamBuffer(source);
  const first = await stream.frameLine('manifest');
  if (!Value.Check(ManifestFrame, first)) throw new SnapshotFormatError('invalid manifest frame');
  yield { type: 'manifest', manifest: first.manifest, signature: first.signature };

  const next = await stream.frameLine('table, piece or end');
  if (Value.Check(PieceFrame, next)) {
    yield* piecesFrom(stream, next);
    return;
  }
  for (let frame = next; ; frame = await stream.frameLine('table or end')) {
    if (Value.Check(EndFrame, frame)) {
      if (await stream.hasMore()) throw new SnapshotFormatError('data after the end frame');
      yield { type: 'end', frame };
      return;
    }
    if (!Value.Check(TableFrame, frame)) throw new SnapshotFormatError('invalid table frame');
    const tableRows = stream.rows(frame.rowsIncluded === false ? 0 : frame.rowCount, frame.table);
    yield { type: 'table', frame, rows: tableRows };
    // Whatever the consumer left unread is drained, so framing stays aligned.
    for await (const _ of tableRows) {
      /* drain */
    }
  }
}

export type PiecesItem =
  { type: 'piece'; frame: PieceFrame; rows: AsyncGenerator<Buffer> } | { type: 'end'; frame: PiecesEndFrame };

/** The pieces stream (docs/protocol.md, "Pieces"): piece frames and their rows, then an end line. */
export async function* readPieces(source: AsyncIterable<Uint8Array | string>): AsyncGenerator<PiecesItem> {
  const stream = new StreamBuffer(source);
  yield* piecesFrom(stream, await stream.frameLine('piece or end'));
}

async function* piecesFrom(stream: StreamBuffer, first: unknown): AsyncGenerator<PiecesItem> {
  for (let frame = first; ; frame = await stream.frameLine('piece or end')) {
    if (Value.Check(PiecesEndFrame, frame)) {
      if (await stream.hasMore()) throw new SnapshotFormatError('data after the end frame');
      yield { type: 'end', frame };
      return;
    }
    if (!Value.Check(PieceFrame, frame)) throw new SnapshotFormatError('invalid piece frame');
    const rows = stream.rows(frame.gone ? 0 : frame.rowCount, `${frame.table} piece ${frame.index}`);
    yield { type: 'piece', frame, rows };
    for await (const _ of rows) {
      /* drain */
    }
  }
}
