/**
 * `npm run soak [-- --devices 50 --minutes 3 --interval 5]`: one Central (its own process)
 * and many simulated edges (each with its own database, in this process) syncing on a
 * short interval, with a small change in Central every few seconds. Reports requests,
 * failures, audit rows against requests, and memory of both sides at start and end.
 * Bounded in time and count; loopback only.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { centralMigrations } from '../src/central/migrations.ts';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { generateSigningKeys } from '../src/contract/signing.ts';
import { loadEdgeConfig } from '../src/edge/config.ts';
import { edgeMigrations } from '../src/edge/migrations.ts';
import { createSyncer } from '../src/edge/syncer.ts';
import type { SyncResult } from '../src/edge/model.ts';
import { createPool, databaseUrl } from '../src/platform/db.ts';
import { freePort, startEmbeddedCluster } from '../src/platform/embedded.ts';
import { migrate } from '../src/platform/migrate.ts';
import { imageNodeArgs, imageNodeEnv, warmCompileCache } from './image.ts';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '50' },
    minutes: { type: 'string', default: '3' },
    interval: { type: 'string', default: '5' },
  },
});
warmCompileCache();
const devices = Math.min(200, Number(values.devices));
const durationMs = Math.min(30, Number(values.minutes)) * 60_000;
const intervalMs = Number(values.interval) * 1000;

/** Heap in use after V8's last collection, from Central's own /metrics (default Node metrics). */
const heapMb = async (port: number) => {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Math.round(Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1] ?? 0) / 2 ** 20);
};
const rssMb = async (pid: number) =>
  Math.round(Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024);

const dir = await mkdtemp(join(tmpdir(), 'dbupdate-soak-'));
const cluster = await startEmbeddedCluster({ dataDir: dir, name: 'pg' });
const keys = generateSigningKeys();
try {
  await cluster.createDatabase('central');
  for (let i = 0; i < devices; i++) await cluster.createDatabase(`edge_${i}`);
  const url = (db: string) => databaseUrl(cluster.url, db);
  const centralPool = createPool(url('central'), { applicationName: 'soak', max: 4 });
  await migrate(centralPool, await centralMigrations());
  await seedCentral(
    centralPool,
    {
      ...DEFAULT_SHAPE,
      companies: 5,
      locationsPerCompany: Math.ceil(devices / 10),
      devicesPerLocation: 2,
      usersPerCompany: 2000,
    },
    { reset: false },
  );
  const { rows } = await centralPool.query<{ mac: string }>(
    'SELECT mac::text AS mac FROM devices ORDER BY mac LIMIT $1',
    [devices],
  );
  const port = await freePort();
  const centralProc = spawn(process.execPath, [...imageNodeArgs(), 'central', 'serve'], {
    env: {
      ...process.env,
      ...imageNodeEnv(),
      CENTRAL_DATABASE_URL: url('central'),
      PORT: String(port),
      HOST: '127.0.0.1',
      MANIFEST_SIGNING_KEY: keys.privateKey,
      LOG_LEVEL: 'error',
      LOG_FORMAT: 'json',
    },
    stdio: 'ignore',
  });
  for (let i = 0; i < 200; i++) {
    if ((await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const log = pino({ level: 'silent' });
  const edges = await Promise.all(
    rows.map(async ({ mac }, i) => {
      const config = loadEdgeConfig({
        EDGE_DATABASE_URL: url(`edge_${i}`),
        CENTRAL_URL: `http://127.0.0.1:${port}`,
        DEVICE_MAC: mac,
        DEVICE_TOKEN: (await enrollDevice(centralPool, mac)).secret,
        MANIFEST_PUBLIC_KEYS: keys.publicKey,
        HTTP_RETRY_ATTEMPTS: '2',
      });
      const pool = createPool(config.EDGE_DATABASE_URL, { applicationName: 'soak-edge', max: 2 });
      await migrate(pool, await edgeMigrations());
      return { pool, syncer: createSyncer(config, pool, log, { initialDelayMs: 200 }) };
    }),
  );
  const start = {
    centralRss: await rssMb(centralProc.pid!),
    centralHeapUsed: await heapMb(port),
    edgesRss: Math.round(process.memoryUsage().rss / 2 ** 20),
  };
  const results: Record<string, number> = {};
  const errors = new Map<string, number>();
  const deadline = Date.now() + durationMs;
  const mutator = setInterval(() => {
    void centralPool.query(
      `UPDATE users SET updated_at = now() WHERE ctid IN (SELECT ctid FROM users TABLESAMPLE SYSTEM (1) LIMIT 20)`,
    );
  }, 3000);
  const t0 = Date.now();
  await Promise.all(
    edges.map(async (edge, i) => {
      await new Promise((r) => setTimeout(r, (i * intervalMs) / edges.length));
      while (Date.now() < deadline) {
        const began = Date.now();
        let result: SyncResult | undefined;
        try {
          result = await edge.syncer.run('schedule');
        } catch (err) {
          errors.set((err as Error).message, (errors.get((err as Error).message) ?? 0) + 1);
        }
        const key = result?.status ?? 'threw';
        results[key] = (results[key] ?? 0) + 1;
        if (result?.error) errors.set(result.error.code, (errors.get(result.error.code) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, Math.max(0, intervalMs - (Date.now() - began))));
      }
    }),
  );
  clearInterval(mutator);
  const end = {
    centralRss: await rssMb(centralProc.pid!),
    centralHeapUsed: await heapMb(port),
    edgesRss: Math.round(process.memoryUsage().rss / 2 ** 20),
  };
  const audit = await centralPool.query<{ status: string; n: number }>(
    'SELECT status, count(*)::int AS n FROM sync_requests GROUP BY status ORDER BY status',
  );
  const acks = await centralPool.query<{ n: number }>('SELECT count(*)::int AS n FROM sync_acknowledgements');
  const total = Object.values(results).reduce((a, b) => a + b, 0);
  centralProc.kill('SIGTERM');
  await Promise.all(edges.map((e) => e.pool.end()));
  await centralPool.end();
  console.log(
    JSON.stringify(
      {
        devices,
        seconds: Math.round((Date.now() - t0) / 1000),
        intervalSeconds: intervalMs / 1000,
        syncs: total,
        results,
        errors: Object.fromEntries(errors),
        auditRowsByStatus: Object.fromEntries(audit.rows.map((r) => [r.status, r.n])),
        auditRows: audit.rows.reduce((a, r) => a + r.n, 0),
        acks: acks.rows[0]!.n,
        memoryMb: { start, end },
      },
      null,
      2,
    ),
  );
} finally {
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
}
