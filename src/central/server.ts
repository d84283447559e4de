/**
 * Builds the Central Fastify instance around the app plugin, and runs it: migrate at
 * start, listen, and on SIGTERM/SIGINT stop taking requests, let in-flight ones
 * finish, close the pool.
 */
import Fastify from 'fastify';
import fp from 'fastify-plugin';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { createPool, type Pool } from '../platform/db.ts';
import type { Server as HttpsServer } from 'node:https';
import { serverOptions } from '../platform/http.ts';
import { carryTraceContext } from '../platform/tracing.ts';
import { readTls, reloadTlsOnHangup, ignoreHangup } from '../platform/tls.ts';
import { createLogger, loggerOptions, type Logger } from '../platform/logger.ts';
import { migrate, type Migration } from '../platform/migrate.ts';
import type { DataModel } from '../contract/data-model.ts';
import { ServedModels } from './sync/versions.ts';
import { OwnRowReader } from './sync/scope/own-rows.ts';
import { SharedScopeReader } from './sync/scope/shared-scopes.ts';
import { SnapshotSource } from './sync/sources/snapshot-source.ts';
import { stopOnSignal } from '../platform/lifecycle.ts';
import { centralApp } from './app.ts';
import type { CentralConfig } from './config.ts';
import { centralMigrations } from './migrations.ts';
import { fleetCounts } from './fleet/repo/device-admin.ts';
import { CentralMetrics } from './metrics.ts';
import { ScopeMemory } from './sync/memory/memory.ts';
import { memoryGiven, sizeTableCache } from './sync/memory/sizing.ts';
import { countFleet } from './sync/repo/scope.ts';
import { ReleaseGate } from './release/gate.ts';
import type { SyncDeps } from './sync/deps.ts';
import { CredentialVerifier } from './sync/credentials.ts';
import { createAuditStore } from './sync/audit-store.ts';
import { createLimits } from './sync/budgets.ts';
import { redisLimits, type SharedLimits } from './sync/shared-budgets.ts';
import { startSweeper } from './fleet/sweeper.ts';

/** TRUST_PROXY as Fastify takes it: off, on, or the proxies' addresses or CIDRs. */
function trustProxySetting(value: string | undefined): boolean | string[] {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  return value
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean);
}

/** What the device-sync service runs on, from the settings. */
function syncDeps(
  config: CentralConfig,
  pool: Pool,
  snapshots: SnapshotSource,
  metrics: CentralMetrics,
  models: ServedModels,
  shared: SharedLimits | undefined,
  ownRows: OwnRowReader,
  log: Logger,
  tableCacheMb: number,
): SyncDeps {
  const memory = new ScopeMemory({
    digestEntries: config.DIGEST_CACHE_ENTRIES,
    tableBytes: tableCacheMb * 2 ** 20,
  });
  return {
    models,
    pool,
    release: new ReleaseGate({
      pool,
      limits: config.guardLimits,
      staging: config.staging,
      windows: config.windows,
      windowBulkRows: config.RELEASE_WINDOW_BULK_ROWS,
      metrics,
      log,
      refreshMs: config.RELEASE_REFRESH_SECONDS * 1000,
      freezeAlertSeconds: config.RELEASE_FREEZE_ALERT_MINUTES * 60,
    }),
    audit: createAuditStore(pool),
    snapshots,
    ownRows,
    sharedScopes: new SharedScopeReader(snapshots, memory, log),
    manifestTtlSeconds: config.MANIFEST_TTL_SECONDS,
    metrics,
    signingKey: config.signingKey,
    requireCredential: config.AUTH_MODE === 'credential',
    memory,
    inlinePiecesMaxBytes: config.INLINE_PIECES_KB * 1024,
    credentials: new CredentialVerifier({
      maxEntries: config.CREDENTIAL_CACHE_ENTRIES,
      ttlMs: config.CREDENTIAL_CACHE_SECONDS * 1000,
      onCheck: (source) => metrics.credentialChecks.inc({ source }),
    }),
    limits: createLimits(
      {
        source: config.RATE_LIMIT_PER_SOURCE_PER_MINUTE,
        device: config.RATE_LIMIT_PER_DEVICE_PER_MINUTE,
        overall: config.RATE_LIMIT_GLOBAL_PER_MINUTE,
      },
      shared?.budget,
    ),
  };
}

/** The Fastify instance: logger, TLS, limits and the timeouts a snapshot server needs. */
function fastifyFor(config: CentralConfig, logger: Logger | boolean | undefined) {
  const tls = config.tls;
  return Fastify({
    ...(logger === undefined
      ? { logger: loggerOptions('central-db-update-api', config.LOG_LEVEL, config.LOG_FORMAT) }
      : typeof logger === 'boolean'
        ? { logger: logger }
        : { loggerInstance: logger }),
    ...serverOptions(),
    // HTTPS when TLS_CERT_FILE and TLS_KEY_FILE are set; otherwise plain HTTP behind a terminator.
    https: tls ? readTls(tls) : null,
    bodyLimit: config.BODY_LIMIT_BYTES,
    requestIdHeader: 'x-request-id',
    // Off unless configured: a spoofed X-Forwarded-For must not become the audit's address
    // nor a way around the per-source limit.
    trustProxy: trustProxySetting(config.TRUST_PROXY),
    forceCloseConnections: 'idle',
    // A client that stops reading holds a snapshot transaction open; after this long
    // without any byte moving, its socket is closed and the transaction rolled back.
    connectionTimeout: 300_000,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
}

/** The pools of the long reads: snapshots (primary and replica) and own rows; closed with the app. */
function readerPools(
  config: CentralConfig,
  app: { addHook(name: 'onClose', hook: () => Promise<void>): unknown },
) {
  const snapshotPools = [config.CENTRAL_DATABASE_URL, config.CENTRAL_READ_DATABASE_URL].map((url) =>
    url === undefined
      ? undefined
      : createPool(url, { max: config.MAX_CONCURRENT_SNAPSHOTS, applicationName: 'central-snapshots' }),
  );
  // One connection of its own (each batch sets its session's COPY settings and device ids),
  // on the primary: one small statement per batch, and no replica to fail over from.
  const ownRowPool = createPool(config.CENTRAL_DATABASE_URL, {
    max: 1,
    applicationName: 'central-own-rows',
  });
  app.addHook('onClose', () =>
    Promise.all([...snapshotPools, ownRowPool].map((p) => p?.end())).then(() => undefined),
  );
  return { snapshotPools, ownRowPool };
}

/** TABLE_CACHE_MB, sized from the fleet when `auto`; a database that cannot answer yet counts no fleet. */
async function sizedTableCache(config: CentralConfig, pool: Pool, log: Logger): Promise<number> {
  const none = { locations: 0, sharedBytes: 0 };
  const fleet = config.tableCacheMb === 'auto' ? await countFleet(pool).catch(() => none) : none;
  const sized = sizeTableCache(config.tableCacheMb, fleet, await memoryGiven());
  log.info(
    { event: 'config.table_cache', tableCacheMb: sized.mb, ...fleet },
    `table cache: ${sized.mb} MB (${sized.why})`,
  );
  return sized.mb;
}

export async function buildCentral(
  config: CentralConfig,
  pool: Pool,
  options: {
    logger?: Logger | boolean;
    metrics?: CentralMetrics;
    /**
     * The data-model versions this code describes, oldest first, and the migrations that
     * bring its database to the newest; the release's own unless a test defines a version.
     */
    dataModels?: readonly DataModel[];
    migrations?: readonly Migration[];
  } = {},
) {
  const migrations = options.migrations ?? (await centralMigrations());
  const models = new ServedModels(options.dataModels);
  const atVersion = migrations.at(-1)?.dataModelVersion;
  if (atVersion !== models.newest.version)
    throw new Error(
      `Central's migrations bring data model v${atVersion}, its code describes v${models.newest.version}`,
    );
  const app = fastifyFor(config, options.logger);
  carryTraceContext(app.server);
  const { snapshotPools, ownRowPool } = readerPools(config, app);
  const metrics = options.metrics ?? new CentralMetrics({ defaults: false });
  const snapshots = new SnapshotSource(snapshotPools[0]!, snapshotPools[1], metrics);
  const shared = config.RATE_LIMIT_REDIS_URL
    ? await redisLimits(config.RATE_LIMIT_REDIS_URL, metrics, app.log)
    : undefined;
  if (shared) app.addHook('onClose', () => shared.close());
  metrics.observeFleet(() => fleetCounts(pool));
  const cache = await sizedTableCache(config, pool, app.log);
  const sync = syncDeps(
    config,
    pool,
    snapshots,
    metrics,
    models,
    shared,
    new OwnRowReader(ownRowPool),
    app.log,
    cache,
  );
  // The release state is known before the first answer: a freeze holds across a restart.
  await sync.release.start();
  app.addHook('onClose', async () => sync.release.stop());
  await app.register(fp(centralApp), {
    sync,
    expectedMigration: migrations.at(-1)?.id ?? 0,
    slots: {
      max: config.MAX_CONCURRENT_SNAPSHOTS,
      answers: config.MAX_CONCURRENT_ANSWERS,
      perDevice: config.MAX_ANSWERS_PER_DEVICE,
      queue: config.SNAPSHOT_QUEUE_LENGTH,
      waitMs: config.SNAPSHOT_QUEUE_WAIT_MS,
    },
    slowReader: {
      minBytes: config.SNAPSHOT_MIN_BYTES_PER_SECOND * config.SNAPSHOT_SLOW_WINDOW_SECONDS,
      windowMs: config.SNAPSHOT_SLOW_WINDOW_SECONDS * 1000,
    },
    adminToken: config.ADMIN_TOKEN,
  });
  return app;
}

export interface RunningCentralServer {
  url: string;
  stop(): Promise<void>;
}

/** Migrates, then listens; `stop` stops taking requests, lets in-flight ones finish, closes the pool. */
export async function startCentralServer(config: CentralConfig, log: Logger): Promise<RunningCentralServer> {
  const pool = createPool(config.CENTRAL_DATABASE_URL, {
    max: config.DB_POOL_MAX,
    applicationName: 'central',
  });
  try {
    await migrate(pool, await centralMigrations(), log);
  } catch (err) {
    await pool.end();
    throw err;
  }
  if (config.AUTH_MODE === 'mac-only') {
    log.warn(
      { event: 'security.mac_only', alert: true },
      'AUTH_MODE=mac-only: devices are trusted on their MAC alone; for labs only, never for a fleet',
    );
  }
  const sweeper = startSweeper(pool, log, config.ABANDONED_REQUEST_SECONDS);
  await sweeper.first;
  const app = await buildCentral(config, pool, { logger: log, metrics: new CentralMetrics() });
  // A fleet connects in bursts (keep-alive connections close between syncs); Node's default
  // backlog of 511 overflowed in the fleet bench, and a dropped SYN costs a device a
  // second or more. The kernel caps it at net.core.somaxconn (4096 by default).
  const url = await app
    .listen({ port: config.PORT, host: config.HOST, backlog: 4096 })
    .catch(async (err: unknown) => {
      sweeper.stop();
      await app.close();
      await pool.end();
      throw err;
    });
  const files = config.tls;
  const stopReloading = files ? reloadTlsOnHangup(app.server as HttpsServer, files, log) : ignoreHangup(log);
  return {
    url,
    async stop() {
      stopReloading();
      sweeper.stop();
      await app.close();
      await pool.end();
    },
  };
}

export async function runCentral(config: CentralConfig): Promise<void> {
  const log = createLogger('central-db-update-api', config.LOG_LEVEL, config);
  const server = await startCentralServer(config, log);
  stopOnSignal(log, () => server.stop());
}
