/**
 * `dbupdate demo`: the whole system on this machine with no set-up: two embedded
 * PostgreSQL clusters (central, edge), migrations, seed data, an enrolled device,
 * Central and Edge on loopback, a first sync with a summary, then syncing on a short
 * schedule (with a small change in Central now and then) until Ctrl-C.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCentralConfig } from '../central/config.ts';
import { prepareDemoCentral } from '../central/fleet/demo-data.ts';
import { startCentralServer } from '../central/server.ts';
import { loadEdgeConfig } from '../edge/config.ts';
import { LOG_LEVELS } from '../platform/config.ts';
import { startEdge } from '../edge/server.ts';
import type { SyncLogEntry, SyncResult } from '../edge/model.ts';
import { createPool, type Pool } from '../platform/db.ts';
import { generateSigningKeys } from '../contract/signing.ts';
import { freePort, startClusterPair } from '../platform/embedded.ts';
import { AppError } from '../platform/errors.ts';
import { createLogger } from '../platform/logger.ts';
import { parseFlags } from './util.ts';

function printSummary(result: SyncResult, urls: Record<string, string> | undefined, mac: string): void {
  const shown = urls ?? {};
  const lines = [
    '',
    `dbupdate demo: first sync ${result.status} in ${result.durationMs} ms (manifest ${result.manifestId})`,
    `device ${mac}: ${result.rowsLoaded} rows loaded, ack ${result.ack}`,
    '',
    '  table             rows  sha256',
    ...result.tables.map((t) => `  ${t.name.padEnd(16)} ${String(t.rowCount).padStart(6)}  ${t.sha256}`),
    '',
    ...Object.entries(shown).map(
      ([k, v]) => `  ${k.padEnd(Math.max(...Object.keys(shown).map((u) => u.length)))}  ${v}`,
    ),
  ];
  if (urls) lines.push('');
  console.log(lines.join('\n'));
}

interface DemoOptions {
  once: boolean;
  users: number;
  interval: number;
  logLevel: string;
}

function demoOptions(argv: string[]): DemoOptions {
  const flags = parseFlags(argv, {
    once: { type: 'boolean' },
    users: { type: 'string' },
    interval: { type: 'string' },
    'log-level': { type: 'string' },
  });
  const users = Number(flags.users ?? 2000);
  const interval = Number(flags.interval ?? 15);
  if (!Number.isSafeInteger(users) || users < 1)
    throw new AppError('USAGE', '--users must be a whole number ≥ 1');
  if (!Number.isSafeInteger(interval) || interval < 1)
    throw new AppError('USAGE', '--interval must be seconds ≥ 1');
  const logLevel = (flags['log-level'] as string | undefined) ?? 'warn';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    throw new AppError('USAGE', `--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  return { once: flags.once === true, users, interval, logLevel };
}

/**
 * Listening from the first moment: a Ctrl-C during start-up (which also reaches the
 * PostgreSQL servers, in the same process group) must still clean up, not kill us mid-way.
 */
function stopSignal(): { requested: Promise<void>; interrupted(): boolean } {
  let interrupted = false;
  const requested = new Promise<void>((resolve) => {
    const onSignal = () => {
      interrupted = true;
      resolve();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  return { requested, interrupted: () => interrupted };
}

type Stops = (() => Promise<void>)[];

/** Both clusters, the seeded Central database, Central and Edge on loopback; each pushes its stop. */
async function startSystem(dir: string, o: DemoOptions, stops: Stops) {
  console.log(`dbupdate demo: starting two embedded PostgreSQL clusters in ${dir}`);
  const clusters = await startClusterPair(dir);
  stops.push(clusters.stop);
  const { centralUrl, edgeUrl } = clusters;
  const pool = createPool(centralUrl, { max: 4, applicationName: 'demo' });
  stops.push(() => pool.end());
  const { seeded, mac, secret } = await prepareDemoCentral(pool, o.users);
  console.log(`seeded central in ${seeded.durationMs} ms: ${JSON.stringify(seeded.counts)}`);

  const keys = generateSigningKeys();
  const adminToken = randomBytes(18).toString('base64url');
  const [centralPort, edgePort] = [await freePort(), await freePort()];
  const local = { HOST: '127.0.0.1', LOG_LEVEL: o.logLevel };
  const central = await startCentralServer(
    loadCentralConfig({
      ...local,
      CENTRAL_DATABASE_URL: centralUrl,
      PORT: String(centralPort),
      MANIFEST_SIGNING_KEY: keys.privateKey,
      ADMIN_TOKEN: adminToken,
    }),
    createLogger('central-db-update-api', o.logLevel, process.env),
  );
  stops.push(central.stop);
  const edgeConfig = loadEdgeConfig({
    ...local,
    EDGE_DATABASE_URL: edgeUrl,
    CENTRAL_URL: central.url,
    DEVICE_MAC: mac,
    DEVICE_TOKEN: secret,
    PORT: String(edgePort),
    SYNC_INTERVAL_SECONDS: String(o.interval),
    SYNC_JITTER_SECONDS: '1',
    MANIFEST_PUBLIC_KEYS: keys.publicKey,
  });
  const edge = await startEdge(edgeConfig, createLogger('dbupdate-service', o.logLevel, process.env));
  stops.push(edge.stop);
  const urls = {
    'central API': central.url,
    'central API docs': `${central.url}/docs`,
    'central OpenAPI': `${central.url}/openapi.json`,
    'edge status': `${edge.url}/status`,
    'edge sync now': `curl -X POST ${edge.url}/sync/now`,
    'central database': centralUrl,
    'edge database': edgeUrl,
    dashboard: `${central.url}/dashboard`,
    'dashboard admin token': adminToken,
    'metrics (Prometheus)': `${central.url}/metrics and ${edge.url}/metrics`,
    'a second edge joins with': `MANIFEST_PUBLIC_KEYS=${keys.publicKey} CENTRAL_URL=${central.url}`,
  };
  return { pool, mac, edge, urls };
}

/** Changes a few users in Central every other round, and prints each sync the edge runs. */
function keepSyncing(pool: Pool, edgeUrl: string, interval: number, firstSyncId: string, stops: Stops): void {
  let round = 0;
  const timer = setInterval(() => {
    round++;
    if (round % 2 === 0) return;
    void pool
      .query(
        `UPDATE users SET display_name = display_name || ' *', updated_at = now()
          WHERE id IN (SELECT user_id FROM group_users LIMIT 3)`,
      )
      .then(() => console.log(`central: changed 3 users (round ${round})`))
      .catch(() => undefined);
  }, interval * 1000);
  let lastSeen = firstSyncId;
  const watcher = setInterval(() => {
    void fetch(`${edgeUrl}/status`)
      .then((r) => r.json() as Promise<{ recent: SyncLogEntry[] }>)
      .then(({ recent }) => {
        const news = recent.filter((x) => Number(x.syncId) > Number(lastSeen) && x.status !== 'running');
        for (const s of news.reverse()) {
          console.log(
            `edge: sync ${s.syncId} ${s.status} ${s.rowsLoaded ?? 0} rows in ${s.durationMs} ms ${s.errorCode ?? ''}`,
          );
          lastSeen = s.syncId;
        }
      })
      .catch(() => undefined);
  }, 1000);
  stops.push(async () => {
    clearInterval(timer);
    clearInterval(watcher);
  });
}

export async function demo(argv: string[]): Promise<number> {
  const o = demoOptions(argv);
  const signal = stopSignal();
  const dir = await mkdtemp(join(tmpdir(), 'dbupdate-demo-'));
  const stops: Stops = [];
  try {
    const { pool, mac, edge, urls } = await startSystem(dir, o, stops);
    const first = await edge.firstSync;
    if (!first || first.status === 'failed') {
      throw new AppError(
        'LOAD_FAILED',
        `first sync did not succeed: ${JSON.stringify(first?.error ?? 'not run')}`,
      );
    }
    // With --once everything stops right after: addresses of stopped services would mislead.
    printSummary(first, o.once ? undefined : urls, mac);
    if (o.once) return 0;
    console.log(
      `syncing every ${o.interval} s; Central changes a few users now and then. Ctrl-C stops everything.`,
    );
    keepSyncing(pool, edge.url, o.interval, first.syncId, stops);
    await signal.requested;
    console.log('\ndbupdate demo: shutting down');
    return 0;
  } catch (err) {
    if (!signal.interrupted()) throw err;
    console.log('\ndbupdate demo: interrupted while starting; shutting down');
    return 130;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}
