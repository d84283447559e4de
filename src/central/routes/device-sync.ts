/**
 * POST /api/device-sync/request and /api/device-sync/ack (CONTRACT §4).
 * Every request to /request leaves one audit row: the service writes it once the MAC
 * is known; refusals before that (bad body, wrong content type, too large) are
 * written by this plugin's onResponse hook.
 */
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  AckBody,
  AckResponse,
  ErrorBody,
  SNAPSHOT_MEDIA_TYPE,
  SyncRequestBody,
} from '../../contract/wire.ts';
import type { Pool } from '../../platform/db.ts';
import { insertRequestRefused } from '../repo/requests.ts';
import { recordAck } from '../services/ack.ts';
import { prepareSync } from '../services/device-sync.ts';
import type { CentralMetrics } from '../metrics.ts';

declare module 'fastify' {
  interface FastifyRequest {
    syncAudited?: boolean;
  }
}

export interface DeviceSyncOptions {
  pool: Pool;
  manifestTtlSeconds: number;
  metrics: CentralMetrics;
}

const errors = {
  400: ErrorBody,
  401: ErrorBody,
  403: ErrorBody,
  404: ErrorBody,
  413: ErrorBody,
  503: ErrorBody,
};

export const deviceSyncRoutes: FastifyPluginAsyncTypebox<DeviceSyncOptions> = async (app, opts) => {
  app.addHook('onResponse', async (request, reply) => {
    if (request.routeOptions.url !== '/api/device-sync/request' || request.syncAudited) return;
    const body = request.body as { mac?: unknown } | undefined;
    const mac = typeof body?.mac === 'string' ? body.mac.slice(0, 64) : '';
    try {
      await insertRequestRefused(opts.pool, {
        mac,
        remoteAddr: request.ip,
        status:
          reply.statusCode === 401 ? 'unauthenticated' : reply.statusCode < 500 ? 'invalid_input' : 'error',
        errorCode: request.errorCode ?? null,
        reason: `answered ${reply.statusCode}`,
        durationMs: Math.round(reply.elapsedTime),
      });
      opts.metrics.snapshots.inc({ outcome: reply.statusCode === 401 ? 'unauthenticated' : 'invalid_input' });
    } catch (err) {
      opts.metrics.auditFailures.inc();
      request.log.error({ err, event: 'audit.write', outcome: 'error' }, 'could not audit a refused request');
    }
  });

  app.post(
    '/api/device-sync/request',
    {
      schema: {
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
      },
    },
    async (request, reply) => {
      const prepared = await prepareSync(
        { pool: opts.pool, manifestTtlSeconds: opts.manifestTtlSeconds, metrics: opts.metrics },
        {
          body: request.body,
          authorization: request.headers.authorization,
          remoteAddr: request.ip,
          log: request.log,
          onAudited: () => {
            request.syncAudited = true;
          },
        },
      );
      const stream = Readable.from(prepared.body, { objectMode: false });
      let streamError: Error | undefined;
      stream.once('error', (err) => (streamError = err));
      finished(reply.raw).then(
        () => prepared.complete(reply.raw.writableFinished, streamError),
        (err: Error) => prepared.complete(false, streamError ?? err),
      );
      return reply
        .header('content-type', SNAPSHOT_MEDIA_TYPE)
        .header('x-manifest-id', prepared.manifest.manifestId)
        .header('cache-control', 'no-store')
        .send(stream as never); // a stream bypasses the response schema, which only documents the type
    },
  );

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
    async (request) => recordAck(opts.pool, request.body, request.headers.authorization),
  );
};
