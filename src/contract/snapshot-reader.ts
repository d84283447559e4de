/**
 * Reads the snapshot stream (docs/protocol.md) without holding it: frame lines are
 * parsed and validated, table rows are passed on as raw COPY text chunks that end
 * exactly at the table's last row. The consumer must drain each table's rows before
 * asking for the next item.
 */
import { Value } from 'typebox/value';
import { EndFrame, ManifestFrame, TableFrame, type Manifest, type ManifestSignature } from './wire.ts';

export class SnapshotFormatError extends Error {}

export type SnapshotItem =
  | { type: 'manifest'; manifest: Manifest; signature: ManifestSignature | undefined }
  | { type: 'table'; frame: TableFrame; rows: AsyncGenerator<Buffer> }
  | { type: 'end'; frame: EndFrame };

const MAX_FRAME_BYTES = 1 << 20;
const NL = 0x0a;

export async function* readSnapshot(
  source: AsyncIterable<Uint8Array | string>,
): AsyncGenerator<SnapshotItem> {
  const iterator = source[Symbol.asyncIterator]();
  let buf: Buffer = Buffer.alloc(0);
  let done = false;

  const more = async (): Promise<boolean> => {
    if (done) return false;
    const next = await iterator.next();
    if (next.done) {
      done = true;
      return false;
    }
    const value = next.value;
    const chunk =
      typeof value === 'string'
        ? Buffer.from(value)
        : Buffer.isBuffer(value)
          ? value
          : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    return true;
  };

  const frameLine = async (what: string): Promise<unknown> => {
    let nl = buf.indexOf(NL);
    while (nl < 0) {
      if (buf.length > MAX_FRAME_BYTES) throw new SnapshotFormatError(`${what} frame is too long`);
      if (!(await more())) throw new SnapshotFormatError(`stream ended before the ${what} frame`);
      nl = buf.indexOf(NL);
    }
    const line = buf.subarray(0, nl).toString('utf8');
    buf = buf.subarray(nl + 1);
    try {
      return JSON.parse(line);
    } catch {
      throw new SnapshotFormatError(`${what} frame is not JSON`);
    }
  };

  async function* rows(count: number, table: string): AsyncGenerator<Buffer> {
    let remaining = count;
    while (remaining > 0) {
      if (buf.length === 0 && !(await more())) {
        throw new SnapshotFormatError(`stream ended inside table ${table} (${remaining} rows missing)`);
      }
      let at = -1;
      while (remaining > 0) {
        const nl = buf.indexOf(NL, at + 1);
        if (nl < 0) break;
        at = nl;
        remaining--;
      }
      if (remaining === 0) {
        const part = buf.subarray(0, at + 1);
        buf = buf.subarray(at + 1);
        yield part;
      } else {
        const part = buf;
        buf = Buffer.alloc(0);
        yield part;
      }
    }
  }

  const first = await frameLine('manifest');
  if (!Value.Check(ManifestFrame, first)) throw new SnapshotFormatError('invalid manifest frame');
  yield { type: 'manifest', manifest: first.manifest, signature: first.signature };

  for (;;) {
    const frame = await frameLine('table or end');
    if (Value.Check(EndFrame, frame)) {
      if (buf.length > 0 || (await more())) throw new SnapshotFormatError('data after the end frame');
      yield { type: 'end', frame };
      return;
    }
    if (!Value.Check(TableFrame, frame)) throw new SnapshotFormatError('invalid table frame');
    const tableRows = rows(frame.rowsIncluded === false ? 0 : frame.rowCount, frame.table);
    yield { type: 'table', frame, rows: tableRows };
    // Whatever the consumer left unread is drained, so framing stays aligned.
    for await (const _ of tableRows) {
      /* drain */
    }
  }
}
