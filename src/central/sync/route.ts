/**
 * The device-sync routes (contract §4): POST /api/device-sync/request (the manifest, and
 * rows or inline pieces), /pieces (the pieces a device lacks, under the same gates and
 * slow-reader floor) and /ack.
 * Every request to /request leaves one audit row: the service writes it once the MAC
 * is known; refusals before that (bad body, wrong content type, too large) are
 * written by this plugin's onSend hook, before the answer leaves.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  AckBody,
  AckResponse,
  INLINE_PIECES_HEADER,
  PIECES_MEDIA_TYPE,
  PiecesRequestBody,
  SNAPSHOT_MEDIA_TYPE,
  SyncRequestBody,
  storableText,
} from '../../contract/wire.ts';
import { normalizeMac } from '../../contract/mac.ts';
import { step } from '../../platform/step.ts';
import { insertRequestRefused } from './repo/requests.ts';
import { recordAck, reportedCode } from './ack.ts';
import { spendSourceBudget } from './budgets.ts';
import { AnswerScope } from './answer-scope.ts';
import type { PreparedSync, SyncDeps } from './deps.ts';
import { prepareSync } from './request.ts';
import { auditStatus } from './request-audit.ts';
import { Admission, type AdmissionOptions } from './admission.ts';
import { encodedStream, errors, pickEncoding, snapshotPayload, streamAnswer } from './body.ts';
import { preparePieces } from './pieces.ts';
import { reportedVersions } from './versions.ts';

declare module 'fastify' {
  interface FastifyRequest {
    syncAudited?: boolean;
  }
}

export interface DeviceSyncOptions {
  sync: SyncDeps;
  slots: AdmissionOptions;
  /** A stream that moves fewer than `minBytes` in any `windowMs` is cut: its slot goes to others. */
  slowReader: { minBytes: number; windowMs: number };
}

/**
 * A request refused before the service wrote its audit row (bad body, wrong content type,
 * too large) is audited here, before the answer leaves (onSend, not onResponse): a client
 * that reads the audit the moment it has its answer finds the row, and a crash in between
 * cannot lose it.
 */
async function auditRefusal(sync: SyncDeps, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.routeOptions.url !== '/api/device-sync/request' || request.syncAudited) return;
  request.syncAudited = true;
  const body = request.body as { mac?: unknown } | undefined;
  // Keyed on the canonical MAC whenever it parses, so the device's own view shows the refusal.
  const raw = typeof body?.mac === 'string' ? body.mac : '';
  const mac = normalizeMac(raw) ?? storableText(raw.slice(0, 64));
  const status = auditStatus(request.errorCode, reply.statusCode);
  try {
    const reported = reportedVersions(request.headers);
    await insertRequestRefused(sync.pool, {
      mac,
      remoteAddr: request.ip,
      schemaVersion: reported.schemaVersion ?? null,
      softwareVersion: reported.softwareVersion ?? null,
      status,
      errorCode: request.errorCode ?? null,
      reason: `answered ${reply.statusCode}`,
      durationMs: Math.round(reply.elapsedTime),
    });
    sync.metrics.snapshots.inc({ outcome: status });
  } catch (err) {
    sync.metrics.auditFailures.inc();
    request.log.error({ err, event: 'audit.write', outcome: 'error' }, 'could not audit a refused request');
  }
}

/**
 * The snapshot answer: the service prepares it (audit row, slots, session, manifest) and hands
 * back a body; this sends it, cutting a slow reader, and ends the answer's scope where the
 * answer ends: the response closed, or a failure before it.
 */
async function serveSnapshot(
  opts: DeviceSyncOptions,
  admission: Admission,
  request: FastifyRequest<{ Body: SyncRequestBody }>,
  reply: FastifyReply,
): Promise<void> {
  const scope = new AnswerScope(admission);
  let prepared: PreparedSync;
  let framed: Awaited<ReturnType<typeof snapshotPayload>>;
  try {
    prepared = await prepareSync(opts.sync, {
      body: request.body,
      reported: reportedVersions(request.headers),
      inlinePieces: request.headers[INLINE_PIECES_HEADER] === '1',
      authorization: request.headers.authorization,
      remoteAddr: request.ip,
      log: request.log,
      onAudited: () => (request.syncAudited = true),
      scope,
    });
    framed = await snapshotPayload(prepared, request.headers['accept-encoding']);
  } catch (err) {
    await scope.close({ sent: false, error: err as Error });
    throw err;
  }
  streamAnswer(reply, framed.payload, prepared.progress, opts.slowReader, scope, {
    'content-type': SNAPSHOT_MEDIA_TYPE,
    'x-manifest-id': prepared.manifest.manifestId,
    ...framed.headers,
  });
}

const requestSchema = {
  tags: ['device-sync'],
  summary: 'Request the snapshot of the calling device',
  description: `Answers with a stream of type ${SNAPSHOT_MEDIA_TYPE} (docs/protocol.md): the manifest line, then per table a frame line and its rows in COPY text format, then an end line.`,
  body: SyncRequestBody,
  response: {
    200: {
      description: 'the snapshot stream',
      content: {
        [SNAPSHOT_MEDIA_TYPE]: { schema: Type.String({ description: 'see docs/protocol.md' }) },
      },
    },
    ...errors,
  },
};

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
  const scope = new AnswerScope(admission);
  const prepared = await preparePieces(opts.sync, {
    body: request.body,
    authorization: request.headers.authorization,
    log: request.log,
    scope,
  }).catch(async (err: unknown) => {
    await scope.close({ sent: false, error: err as Error });
    throw err;
  });
  const encoding = pickEncoding(request.headers['accept-encoding']);
  const body = encoding ? encodedStream(prepared.body, encoding, true) : prepared.body;
  streamAnswer(reply, body, prepared.progress, opts.slowReader, scope, {
    'content-type': PIECES_MEDIA_TYPE,
    ...(encoding ? { 'content-encoding': encoding, vary: 'accept-encoding' } : {}),
  });
}

export const deviceSyncRoutes: FastifyPluginAsyncTypebox<DeviceSyncOptions> = async (app, opts) => {
  // The only budget spent before authentication: per source address (device and fleet
  // budgets are spent by the services once the credential is checked).
  app.addHook('onRequest', async (request) => spendSourceBudget(opts.sync.limits, request.ip));
  app.addHook('onSend', async (request, reply, payload) => {
    await auditRefusal(opts.sync, request, reply);
    return payload;
  });
  const admission = new Admission(opts.slots);

  // Answers are compressed by body.ts, not by the app's compression.
  app.post('/api/device-sync/request', { schema: requestSchema, compress: false }, async (request, reply) => {
    await serveSnapshot(opts, admission, request, reply);
    return reply;
  });

  app.post('/api/device-sync/pieces', { schema: piecesSchema, compress: false }, async (request, reply) => {
    await servePieces(opts, admission, request, reply);
    return reply;
  });

  app.post(
    '/api/device-sync/ack',
    {
      schema: {
        tags: ['device-sync'],
        summary: 'Acknowledge a manifest (idempotent)',
        body: AckBody,
        response: { 200: AckResponse, ...errors },
      },
    },
    async (request) => {
      const log = request.log.child({
        device: normalizeMac(request.body.mac) ?? request.body.mac.slice(0, 64),
        manifestId: request.body.manifestId,
      });
      const taken = await step(log, 'ack.store', { status: request.body.status }, () =>
        recordAck(opts.sync, request.body, request.headers.authorization),
      );
      opts.sync.metrics.acks.inc({ result: request.body.status, code: reportedCode(request.body.error) });
      return taken;
    },
  );
};
