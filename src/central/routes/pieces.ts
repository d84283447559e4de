/**
 * POST /api/device-sync/pieces: streams the pieces a device asks for (services/pieces.ts),
 * under the same slots and slow-reader floor as the snapshot it belongs to.
 */
import { once } from 'node:events';
import zlib from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { PIECES_MEDIA_TYPE, PiecesRequestBody } from '../../contract/wire.ts';
import { preparePieces } from '../services/pieces.ts';
import type { Admission } from '../services/slots.ts';
import type { DeviceSyncOptions } from './device-sync.ts';
import { errors, pickEncoding, streamAnswer, ZSTD_LEVEL_1, type Encoding } from './streaming.ts';

export const piecesSchema = {
  tags: ['device-sync'],
  summary: "Fetch pieces of a manifest's tables (resume and deltas)",
  description: `Answers with a stream of type ${PIECES_MEDIA_TYPE} (docs/protocol.md, "Pieces"): per wanted piece a frame line and its rows in COPY text format, or a frame saying it is gone, then an end line.`,
  body: PiecesRequestBody,
  response: {
    200: {
      description: 'the pieces stream',
      content: { [PIECES_MEDIA_TYPE]: { schema: Type.String({ description: 'see docs/protocol.md' }) } },
    },
    ...errors,
  },
};

export async function servePieces(
  opts: DeviceSyncOptions,
  admission: Admission,
  request: FastifyRequest<{ Body: PiecesRequestBody }>,
  reply: FastifyReply,
): Promise<void> {
  const slots = admission.forRequest();
  const free = slots.free;
  const prepared = await preparePieces(opts.sync, {
    body: request.body,
    authorization: request.headers.authorization,
    log: request.log,
    admit: () => slots.take('session', 'first'),
    claim: slots.claim,
  }).catch((err: unknown) => {
    free();
    throw err;
  });
  const encoding = pickEncoding(request.headers['accept-encoding']);
  const body = encoding ? flushedPerPiece(prepared.body, encoding) : prepared.body;
  streamAnswer(reply, body, prepared, opts.slowReader, free, {
    'content-type': PIECES_MEDIA_TYPE,
    ...(encoding ? { 'content-encoding': encoding, vary: 'accept-encoding' } : {}),
  });
}

/**
 * Compressed here rather than by @fastify/compress, so that the compressor is flushed after
 * every run of whole pieces: what the edge received decodes at once, and a cut loses at most
 * the piece in flight instead of a whole compression block.
 */
async function* flushedPerPiece(body: AsyncIterable<Buffer>, encoding: Encoding): AsyncGenerator<Buffer> {
  const z = encoding === 'zstd' ? zlib.createZstdCompress({ params: ZSTD_LEVEL_1 }) : zlib.createGzip();
  const kind = encoding === 'zstd' ? zlib.constants.ZSTD_e_flush : zlib.constants.Z_SYNC_FLUSH;
  const out: Buffer[] = [];
  z.on('data', (chunk: Buffer) => out.push(chunk));
  try {
    for await (const buf of body) {
      z.write(buf);
      await new Promise<void>((resolve) => z.flush(kind, () => resolve()));
      if (out.length > 0) yield Buffer.concat(out.splice(0));
    }
    z.end();
    await once(z, 'end');
    if (out.length > 0) yield Buffer.concat(out.splice(0));
  } finally {
    z.destroy();
  }
}
