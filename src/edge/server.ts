/**
 * The Edge service: migrate, a first sync at start, then the schedule (a fixed interval, with
 * jitter so a fleet does not call Central in lockstep), and the local API. On
 * SIGTERM/SIGINT: stop scheduling, let a running sync finish, close.
 */
import Fastify from 'fastify';
import fp from 'fastify-plugin';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { createPool, type Pool } from '../platform/db.ts';
import { serverOptions } from '../platform/http.ts';
import { carryTraceContext } from '../platform/tracing.ts';
import { createLogger, type Logger } from '../platform/logger.ts';
import { stopOnSignal } from '../platform/lifecycle.ts';
import { repeatEvery } from '../platform/schedule.ts';
import { DATA_MODEL } from '../contract/data-model.ts';
import { edgeApp } from './app.ts';
import { jitterSeconds, type EdgeConfig } from './config.ts';
import { edgeMigrations, prepareEdgeDatabase } from './migrations.ts';
import { scheduledVerify } from './verify/scheduled.ts';
import type { Syncer } from './sync/run.ts';
import { createSyncer } from './syncer.ts';
import type { SyncResult, SyncTrigger } from './model.ts';
import { loadModeOf } from './repo/tables.ts';

export async function buildEdge(config: EdgeConfig, pool: Pool, syncer: Syncer, logger: Logger | false) {
  const migrations = await edgeMigrations();
  const app = Fastify({
    ...(logger === false ? { logger: false } : { loggerInstance: logger }),
    ...serverOptions(),
    bodyLimit: 4096,
    forceCloseConnections: 'idle',
  }).withTypeProvider<TypeBoxTypeProvider>();
  carryTraceContext(app.server);
  await app.register(fp(edgeApp), {
    pool,
    syncer,
    expectedMigration: migrations.at(-1)?.id ?? 0,
    localToken: config.LOCAL_API_TOKEN,
    limits: { downloadRateKbps: config.DOWNLOAD_RATE_KBPS, dataLifetimeDays: config.DATA_LIFETIME_DAYS },
  });
  return app;
}

/** Runs a sync and logs its outcome; the scheduler must never throw. */
async function scheduledSync(
  syncer: Syncer,
  trigger: SyncTrigger,
  log: Logger,
): Promise<SyncResult | undefined> {
  try {
    const result = await syncer.run(trigger);
    log.info({ event: 'sync.result', trigger, ...result, tables: undefined }, `sync ${result.status}`);
    return result;
  } catch (err) {
    log.warn({ event: 'sync.result', trigger, err }, 'sync not run');
    return undefined;
  }
}

/** Says at start whether this database user can apply deltas, and what to grant when it cannot. */
async function reportLoadMode(pool: Pool, log: Logger): Promise<void> {
  const mode = await loadModeOf(pool);
  if (mode !== 'whole') {
    log.info({ event: 'edge.load_mode', mode }, `deltas are applied (load mode ${mode})`);
    return;
  }
  log.warn(
    { event: 'edge.load_mode', mode, alert: true },
    "this database user can neither turn triggers off nor defer the data tables' foreign keys: every " +
      'change reloads all eight tables. Run the edge as the owner of its tables (README), or have a ' +
      'superuser run: GRANT SET ON PARAMETER session_replication_role TO <user>',
  );
}

/** Settings fit for a lab only, said at every start. */
function warnInsecure(config: EdgeConfig, log: Logger): void {
  if (config.AUTH_MODE === 'mac-only')
    log.warn(
      { event: 'security.mac_only', alert: true },
      'AUTH_MODE=mac-only: no DEVICE_TOKEN is sent; only a lab Central in the same mode answers',
    );
  if (config.insecureCentral) {
    log.warn(
      { event: 'security.insecure_http', alert: true, central: new URL(config.CENTRAL_URL).host },
      'ALLOW_INSECURE_HTTP=true: the device credential and the data travel in clear; for labs only',
    );
  }
}

export interface RunningEdge {
  url: string;
  /** The sync run at start (undefined when it could not run at all). */
  firstSync: Promise<SyncResult | undefined>;
  stop(): Promise<void>;
}

export async function startEdge(
  config: EdgeConfig,
  log: Logger = createLogger('dbupdate-service', config.LOG_LEVEL, config),
): Promise<RunningEdge> {
  const pool = createPool(config.EDGE_DATABASE_URL, { max: 5, applicationName: 'dbupdate-service' });
  try {
    await prepareEdgeDatabase(pool, config.EDGE_READER_ROLE, log);
  } catch (err) {
    await pool.end();
    throw err;
  }
  await reportLoadMode(pool, log);
  warnInsecure(config, log);
  const syncer = createSyncer(config, pool, log, { defaultMetrics: true });
  const app = await buildEdge(config, pool, syncer, log);
  const address = await app.listen({ port: config.PORT, host: config.HOST });
  const firstSync = scheduledSync(syncer, 'start', log);
  const verifyDeps = {
    pool,
    syncer,
    metrics: syncer.metrics,
    model: DATA_MODEL,
    log,
    repair: config.VERIFY_REPAIR,
  };
  const verifying =
    config.VERIFY_INTERVAL_SECONDS > 0
      ? repeatEvery(config.VERIFY_INTERVAL_SECONDS * 1000, 0, () =>
          scheduledVerify(verifyDeps).then(() => undefined),
        )
      : undefined;
  const schedule = repeatEvery(
    config.SYNC_INTERVAL_SECONDS * 1000,
    jitterSeconds(config) * 1000,
    async () => {
      // The API's /sync/now may hold the lock; its sync counts as this round's.
      if (!syncer.running) await scheduledSync(syncer, 'schedule', log);
    },
  );
  return {
    url: address,
    firstSync,
    async stop() {
      const scheduled = Promise.all([schedule.stop(), verifying?.stop()]);
      await app.close();
      await Promise.all([scheduled, firstSync]);
      await pool.end();
    },
  };
}

export async function runEdge(config: EdgeConfig): Promise<void> {
  const log = createLogger('dbupdate-service', config.LOG_LEVEL, config);
  const edge = await startEdge(config, log);
  stopOnSignal(log, () => edge.stop());
}
