/**
 * The Edge service's local API as a Fastify plugin: probes, POST /sync/now and
 * GET /status. The schedule and the lifecycle live in the server file.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ErrorBody } from '../contract/wire.ts';
import type { Pool } from '../platform/db.ts';
import { AppError } from '../platform/errors.ts';
import { healthRoutes } from '../platform/health.ts';
import { bearerToken, installErrorHandling, isLoopback, tokenMatches } from '../platform/http.ts';
import { getState, recentSyncs } from './repo/ledger.ts';
import { loadModeOf } from './repo/tables.ts';
import type { Syncer } from './sync/run.ts';
import { ErrorDetail, StatusBody, SyncResultBody, syncLogToWire, type SyncResult } from './model.ts';

export interface EdgeAppOptions {
  pool: Pool;
  syncer: Syncer;
  expectedMigration: number;
  /** LOCAL_API_TOKEN: with it, /sync/now and /status answer whoever presents it; without, only this machine. */
  localToken: string | undefined;
  /** What /status tells of the release settings (docs/releases.md); absent: none set. */
  limits?: { downloadRateKbps: number; dataLifetimeDays: number };
}

// Query strings arrive as text; types are not coerced.
const SyncNowQuery = Type.Object({
  wait: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
});

/** Starting syncs and reading manifest ids are for the device's operator, not its network. */
function requireLocalCaller(localToken: string | undefined, request: FastifyRequest): void {
  if (request.routeOptions.url === '/metrics') return;
  if (localToken !== undefined) {
    if (!tokenMatches(localToken, bearerToken(request.headers.authorization)))
      throw new AppError('UNAUTHENTICATED', 'Authorization: Bearer <LOCAL_API_TOKEN> required');
  } else if (!isLoopback(request.socket.remoteAddress)) {
    throw new AppError('UNAUTHENTICATED', 'only this machine may call this without LOCAL_API_TOKEN set');
  }
}

const syncRoutes: FastifyPluginAsyncTypebox<EdgeAppOptions> = async (app, opts) => {
  app.addHook('onRequest', async (request) => requireLocalCaller(opts.localToken, request));
  app.post(
    '/sync/now',
    {
      schema: {
        summary: 'Run one sync now (the same code as the schedule and the CLI)',
        querystring: SyncNowQuery,
        response: {
          200: SyncResultBody,
          202: Type.Object({ status: Type.Literal('started') }),
          401: ErrorBody,
          409: ErrorBody,
          502: Type.Object({ error: ErrorDetail, sync: Type.Optional(SyncResultBody) }),
        },
      },
    },
    async (request, reply) => {
      if (opts.syncer.running)
        throw new AppError('SYNC_IN_PROGRESS', 'a sync is running; try again when it ends');
      const run = opts.syncer.run('manual');
      if (request.query.wait === 'false') {
        run.catch((err: unknown) => request.log.warn({ err }, 'background sync failed'));
        return reply.status(202).send({ status: 'started' as const });
      }
      const result: SyncResult = await run;
      if (result.status !== 'failed') return result;
      return reply.status(502).send({
        error: { code: result.error!.code, message: result.error!.message },
        sync: result,
      });
    },
  );

  app.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics' }, logLevel: 'warn' },
    async (_request, reply) => {
      const registry = opts.syncer.metrics.registry;
      return reply.header('content-type', registry.contentType).send(await registry.metrics());
    },
  );

  app.get(
    '/status',
    {
      schema: {
        summary: 'Recent syncs from the ledger, and the sync state',
        response: { 200: StatusBody, 401: ErrorBody },
      },
    },
    async () => ({
      running: opts.syncer.running,
      loadMode: await loadModeOf(opts.pool),
      downloadRateKbps: opts.limits?.downloadRateKbps || null,
      dataLifetimeDays: opts.limits?.dataLifetimeDays || null,
      state: await getState(opts.pool),
      recent: (await recentSyncs(opts.pool, 20)).map(syncLogToWire),
    }),
  );
};

export async function edgeApp(app: FastifyInstance, opts: EdgeAppOptions): Promise<void> {
  installErrorHandling(app);
  await app.register(healthRoutes, { pool: opts.pool, expectedMigration: opts.expectedMigration });
  await app.register(syncRoutes, opts);
}
