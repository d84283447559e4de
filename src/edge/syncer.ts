/**
 * The edge's Syncer wired from its configuration: the client to Central, the metrics and the
 * sync's settings. Apart from server.ts so that `dbupdate edge sync` loads no HTTP server.
 */
import type { DataModel } from '../contract/data-model.ts';
import { DATA_MODEL } from '../contract/data-model.ts';
import type { Pool } from '../platform/db.ts';
import type { Logger } from '../platform/logger.ts';
import type { EdgeConfig } from './config.ts';
import { EdgeMetrics } from './metrics.ts';
import { countPendingAcks, getState } from './repo/ledger.ts';
import { CentralClient } from './sync/client.ts';
import { RateCap } from './sync/rate-cap.ts';
import { Syncer } from './sync/run.ts';

export function createSyncer(
  config: EdgeConfig,
  pool: Pool,
  log: Logger,
  options: { initialDelayMs?: number; defaultMetrics?: boolean; model?: DataModel } = {},
): Syncer {
  const model = options.model ?? DATA_MODEL;
  const central = new CentralClient({
    schemaVersion: model.version,
    baseUrl: config.CENTRAL_URL,
    token: config.DEVICE_TOKEN,
    retryAttempts: config.HTTP_RETRY_ATTEMPTS,
    attemptTimeoutMs: config.HTTP_STALL_TIMEOUT_SECONDS * 1000,
    stallTimeoutMs: config.HTTP_STALL_TIMEOUT_SECONDS * 1000,
    ...(config.centralCa ? { ca: config.centralCa, caFile: config.CENTRAL_CA_FILE } : {}),
    ...(options.initialDelayMs === undefined ? {} : { initialDelayMs: options.initialDelayMs }),
    ...(config.DOWNLOAD_RATE_KBPS > 0 ? { rateCap: new RateCap(config.DOWNLOAD_RATE_KBPS) } : {}),
  });
  const metrics = new EdgeMetrics({ defaults: options.defaultMetrics ?? false });
  metrics.observe({
    breakerState: () => central.breakerState,
    pendingAcks: () => countPendingAcks(pool),
    lastSuccessAt: async () => {
      const state = await getState(pool);
      const at = state.lastCheckAt ?? state.lastSuccessAt;
      return at === undefined ? undefined : new Date(at);
    },
  });
  return new Syncer({
    pool,
    central,
    mac: config.mac,
    log,
    metrics,
    publicKeys: config.publicKeys,
    deadlineMs: config.SYNC_DEADLINE_SECONDS * 1000,
    model,
    dataLifetimeDays: config.DATA_LIFETIME_DAYS,
    // The first pause before resuming a transfer that brought nothing, as for retries.
    ...(options.initialDelayMs === undefined ? {} : { resumeDelayMs: options.initialDelayMs }),
  });
}
