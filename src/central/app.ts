/**
 * The Central service as a Fastify plugin: routes, OpenAPI, compression and error
 * handling. The server file owns the Fastify instance, the pool and the lifecycle.
 */
import compress from '@fastify/compress';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { AdmissionOptions } from './sync/admission.ts';
import type { FastifyInstance } from 'fastify';
import { installErrorHandling } from '../platform/http.ts';
import { adminRoutes } from './fleet/admin-routes.ts';
import { dashboardRoutes } from './fleet/dashboard-route.ts';
import { deviceSyncRoutes } from './sync/route.ts';
import { healthRoutes } from '../platform/health.ts';
import type { SyncDeps } from './sync/deps.ts';

export interface CentralAppOptions {
  sync: SyncDeps;
  expectedMigration: number;
  slots: AdmissionOptions;
  slowReader: { minBytes: number; windowMs: number };
  adminToken: string | undefined;
}

export async function centralApp(app: FastifyInstance, opts: CentralAppOptions): Promise<void> {
  installErrorHandling(app);
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'central-db-update-api',
        version: '1',
        description: 'Central side of dbupdate: device snapshots, acknowledgements and audit.',
      },
      components: {
        securitySchemes: {
          device: { type: 'http', scheme: 'bearer' },
          admin: { type: 'http', scheme: 'bearer' },
        },
      },
      security: [{ device: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  // The admin API's JSON; device-sync answers are compressed by sync/body.ts.
  await app.register(compress, {
    global: true,
    // zstd first: smaller than gzip at a fraction of its CPU (Node 24 and undici both speak it).
    encodings: ['zstd', 'gzip', 'deflate'],
    threshold: 1024,
    customTypes: /^application\/json/,
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    opts.sync.metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    opts.sync.metrics.latency.observe({ route }, reply.elapsedTime / 1000);
  });
  app.get('/metrics', { schema: { hide: true }, logLevel: 'warn' }, async (_request, reply) =>
    reply
      .header('content-type', opts.sync.metrics.registry.contentType)
      .send(await opts.sync.metrics.registry.metrics()),
  );
  await app.register(healthRoutes, { pool: opts.sync.pool, expectedMigration: opts.expectedMigration });
  await app.register(adminRoutes, {
    pool: opts.sync.pool,
    adminToken: opts.adminToken,
    servedVersions: opts.sync.models.versions,
    release: opts.sync.release,
    preview: { model: opts.sync.models.newest, known: (t) => opts.sync.memory.pieces(t) },
  });
  await app.register(dashboardRoutes);
  await app.register(deviceSyncRoutes, {
    sync: opts.sync,
    slots: opts.slots,
    slowReader: opts.slowReader,
  });
}
