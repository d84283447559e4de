/**
 * How every device-sync answer leaves: sent (a buffer or a stream), cut when its reader is too
 * slow, ended through its AnswerScope, and compressed here, in one place (the sync routes opt
 * out of the app's @fastify/compress), by what the client accepts (zstd, else gzip, else none):
 *
 * | answer                              | compression                                                   |
 * |-------------------------------------|---------------------------------------------------------------|
 * | no rows (unchanged, pieces to come) | one buffer, one call at level 1 with its size pledged; < 1 KB none |
 * | inline pieces                       | two frames, manifest and pieces, each decodable once arrived  |
 * | rows, all from memory, up to 1 MiB  | one buffer, one call at level 1 with its size pledged          |
 * | rows otherwise (read in a session)  | one stream at the codec's default level, as read              |
 * | pieces (/pieces)                    | one stream at level 1, flushed after every run of whole pieces |
 */
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { FastifyReply } from 'fastify';
import type { AnswerScope } from './answer-scope.ts';
import type { PreparedSync } from './deps.ts';
import { bodyCarriesRows } from './snapshot-body.ts';
import { ErrorBody } from '../../contract/wire.ts';

/**
 * A client that stops reading, or reads a few bytes a second, holds a snapshot slot, a
 * connection and a read transaction: enough of them deny service to the fleet. A streamed
 * body is produced only as fast as the client takes it (backpressure), so its progress is the
 * reader's; a buffered one is all handed over at once, so its progress is what the socket took
 * (bytesWritten), until it has taken the last byte. Below the floor for a whole window, the
 * response is cut.
 */
function cutSlowReader(
  response: ServerResponse,
  progress: { readonly bytes: number },
  floor: { minBytes: number; windowMs: number },
  onCut: (err: Error) => void,
  buffered: boolean,
): NodeJS.Timeout {
  let seen = 0;
  const done = () => (buffered ? response.writableFinished : response.writableEnded);
  const timer = setInterval(() => {
    if (progress.bytes - seen < floor.minBytes && !done()) {
      const err = new Error(`client read ${progress.bytes - seen} bytes in ${floor.windowMs} ms; cut`);
      onCut(err);
      response.destroy(err);
    }
    seen = progress.bytes;
  }, floor.windowMs);
  timer.unref();
  return timer;
}

export const errors = {
  400: ErrorBody,
  401: ErrorBody,
  403: ErrorBody,
  404: ErrorBody,
  409: ErrorBody,
  413: ErrorBody,
  429: ErrorBody,
  503: ErrorBody,
};

/**
 * Sends `body` as the answer, cuts a slow reader, and once the response closed ends the answer
 * (answer-scope.ts: its session, its slots, then its audit): sent when every byte was handed
 * to the client, aborted or failed when not.
 */
export function streamAnswer(
  reply: FastifyReply,
  body: AsyncIterable<Buffer> | Buffer,
  progress: { readonly bytes: number },
  floor: { minBytes: number; windowMs: number },
  scope: AnswerScope,
  headers: Record<string, string>,
): void {
  let streamError: Error | undefined;
  let payload: Buffer | Readable = body as Buffer;
  const response = reply.raw;
  const buffered = Buffer.isBuffer(body);
  // A buffered answer is made: it reads nothing more and needs no slot while it is written.
  if (buffered) scope.answerMade();
  else {
    payload = Readable.from(body, { objectMode: false });
    payload.once('error', (err) => (streamError = err));
  }
  const taken = buffered
    ? {
        get bytes() {
          return response.socket?.bytesWritten ?? 0;
        },
      }
    : progress;
  const watchdog = cutSlowReader(response, taken, floor, (err) => (streamError = err), buffered);
  // A response always closes, sent or not (writableFinished says which); one listener for
  // that rather than stream.finished, whose eight listeners per answer cost a twentieth of
  // Central's CPU when a fleet is mostly up to date. A client gone before the last byte is
  // an abort, not an error, unless something failed first.
  response.once('error', (err: Error) => (streamError ??= err));
  const closed = () => {
    void scope
      .close({ sent: response.writableFinished, error: streamError })
      .finally(() => clearInterval(watchdog));
  };
  // A client gone while the answer was prepared (a queue wait, a long digest pass) closed the
  // response before anyone listened: without this its slots and device claim were never freed.
  if (response.destroyed) queueMicrotask(closed);
  else response.once('close', closed);
  // A stream bypasses the response schema, which only documents the type.
  void reply.headers({ 'cache-control': 'no-store', ...headers }).send(payload as never);
}

/**
 * The payload of a snapshot answer and its headers, compressed as the table in this file's
 * header says. One without rows is a few frame lines made without I/O (and one with inline
 * pieces, from memory, little more): sent as one buffer it is compressed in one call and goes
 * out with a Content-Length in one write; as a stream it would cost a compression stream per
 * answer (a third of Central's CPU when most of a fleet is up to date).
 */
export async function snapshotPayload(
  prepared: PreparedSync,
  accept: string | undefined,
): Promise<{ payload: AsyncIterable<Buffer> | Buffer; headers: Record<string, string> }> {
  const encoding = pickEncoding(accept);
  const buffered = prepared.rowsInMemory !== undefined && prepared.rowsInMemory <= BUFFERED_ROWS_BYTES;
  if (bodyCarriesRows(prepared.manifest) && !(encoding && buffered))
    return encoding
      ? { payload: encodedStream(prepared.body, encoding, false), headers: encodedHeaders(encoding) }
      : { payload: prepared.body, headers: {} };
  const chunks: Buffer[] = [];
  for await (const chunk of prepared.body) chunks.push(chunk);
  if (prepared.inlinePieces)
    // The manifest line (the body's first chunk), then the pieces: two frames.
    return compressFrames([chunks[0]!, Buffer.concat(chunks.slice(1))], encoding);
  const whole = Buffer.concat(chunks);
  return whole.length < COMPRESS_MIN_BYTES
    ? { payload: whole, headers: {} }
    : compressFrames([whole], encoding);
}

/** Below this an answer goes out as it is: compression would save less than its own framing costs. */
const COMPRESS_MIN_BYTES = 1024;

/**
 * Rows from memory up to this size are compressed in one call, as an answer without rows is: a
 * compression stream per answer at the default level was 18 % of Central's CPU in a storm of
 * 400-user locations (a level-3 context cleared for about 110 KB of rows each). Larger ones
 * stream, so that an answer holds at most this much twice over.
 */
const BUFFERED_ROWS_BYTES = 2 ** 20;

const encodedHeaders = (encoding: Encoding) => ({ 'content-encoding': encoding, vary: 'accept-encoding' });

export type Encoding = 'zstd' | 'gzip';

/** The encoding a streamed answer is compressed in by its route, from Accept-Encoding; undefined: none. */
export function pickEncoding(accept: string | undefined): Encoding | undefined {
  const offered = (accept ?? '').split(',').map((e) => e.trim().split(';')[0]);
  return offered.includes('zstd') ? 'zstd' : offered.includes('gzip') ? 'gzip' : undefined;
}

/**
 * zstd level 1 for the answers the routes compress themselves: on rows of ids and names it came
 * out no larger than the default level 3 (10,014 bytes against 10,529 for 31 KB of user rows),
 * and a level-3 context costs about 0.3 ms of CPU to set up for each answer.
 */
export const ZSTD_LEVEL_1 = { [zlib.constants.ZSTD_c_compressionLevel]: 1 };

const GZIP_LEVEL_1 = { level: 1 };

const zstdOnce = promisify(zlib.zstdCompress);
const gzipOnce = promisify(zlib.gzip);

/**
 * Frames up to this size are compressed on the event loop. An asynchronous call costs two
 * thread wake-ups (write and flush) and their completions: on the 2-core VM of
 * docs/scaling.md that was 6 % of Central's thread in a first-sync storm, more than the
 * compression itself (zstd level 1 does 256 KB of rows in about half a millisecond).
 */
const SYNC_FRAME_BYTES = 256 * 1024;

function compressFrame(frame: Buffer, encoding: Encoding): Buffer | Promise<Buffer> {
  const options = { params: ZSTD_LEVEL_1, pledgedSrcSize: frame.length };
  if (frame.length <= SYNC_FRAME_BYTES)
    return encoding === 'zstd' ? zlib.zstdCompressSync(frame, options) : zlib.gzipSync(frame, GZIP_LEVEL_1);
  return encoding === 'zstd' ? zstdOnce(frame, options) : gzipOnce(frame, GZIP_LEVEL_1);
}

/**
 * A buffered answer of rows (inline pieces, tens of KB), compressed here in one call per frame
 * rather than by @fastify/compress, which streams any payload above 8 KB on two cores: a zstd
 * stream of unknown size at level 3 clears a window's worth of tables for each answer, and made
 * a first sync cost Central more than the piece fetch it saved. Level 1 with the size pledged
 * sizes them to the frame; a large frame is compressed off the event loop.
 * Each of `frames` is a frame (zstd) or member (gzip) of its own, decodable once it arrived:
 * the manifest is one, so that a cut among the pieces leaves the edge its manifest to resume.
 */
async function compressFrames(
  frames: readonly Buffer[],
  encoding: Encoding | undefined,
): Promise<{ payload: Buffer; headers: Record<string, string> }> {
  if (!encoding) return { payload: Buffer.concat(frames), headers: {} };
  const compressed = await Promise.all(frames.map((frame) => compressFrame(frame, encoding)));
  return { payload: Buffer.concat(compressed), headers: encodedHeaders(encoding) };
}

/**
 * A streamed answer compressed as it is read. Pieces (`flushEach`) are flushed after every run
 * of whole pieces: what the edge received decodes at once, and a cut loses at most the piece in
 * flight instead of a whole compression block; level 1, as a piece stream is mostly rows from
 * memory. Rows read from PostgreSQL go at the codec's default level without flushes (the level
 * @fastify/compress gave them before), bounded by the compressor's buffer.
 */
export async function* encodedStream(
  body: AsyncIterable<Buffer>,
  encoding: Encoding,
  flushEach: boolean,
): AsyncGenerator<Buffer> {
  const level = flushEach ? { params: ZSTD_LEVEL_1 } : {};
  const z = encoding === 'zstd' ? zlib.createZstdCompress(level) : zlib.createGzip();
  const kind = encoding === 'zstd' ? zlib.constants.ZSTD_e_flush : zlib.constants.Z_SYNC_FLUSH;
  const out: Buffer[] = [];
  z.on('data', (chunk: Buffer) => out.push(chunk));
  try {
    for await (const buf of body) {
      if (flushEach) {
        z.write(buf);
        await new Promise<void>((resolve) => z.flush(kind, () => resolve()));
      } else if (!z.write(buf)) await once(z, 'drain');
      if (out.length > 0) yield Buffer.concat(out.splice(0));
    }
    z.end();
    await once(z, 'end');
    if (out.length > 0) yield Buffer.concat(out.splice(0));
  } finally {
    z.destroy();
  }
}
