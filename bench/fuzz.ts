/**
 * `npm run fuzz [-- --requests 24000 --seed N]`: malformed and plausible requests to every
 * endpoint of Central and Edge (bench/fuzz-cases.ts), as every kind of caller (bench/fuzz-world.ts:
 * enrolled, never enrolled, disabled, revoked, another device's credential, the admin), then a flood of acks with wrong credentials and
 * random MACs; counts answers by status, lists every answer off the documented shape, and
 * samples Central's memory after a full collection, to tell a leak from a heap that grew.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadCentralConfig } from '../src/central/config.ts';
import { prepareDemoCentral } from '../src/central/fleet/demo-data.ts';
import { startCentralServer } from '../src/central/server.ts';
import { generateSigningKeys } from '../src/contract/signing.ts';
import { loadEdgeConfig } from '../src/edge/config.ts';
import { startEdge } from '../src/edge/server.ts';
import { createPool } from '../src/platform/db.ts';
import { startClusterPair } from '../src/platform/embedded.ts';
import { createLogger } from '../src/platform/logger.ts';
import { fuzzCases, judge, sendCase, type FuzzCase } from './fuzz-cases.ts';
import { prepareFuzzWorld } from './fuzz-world.ts';
import { changeDevice } from '../src/central/fleet/devices.ts';
import { enrollDevice } from '../src/central/fleet/enroll.ts';

const ADMIN_TOKEN = 'fuzz-admin-token-0123456789abcdef';

const { values } = parseArgs({
  options: { requests: { type: 'string', default: '24000' }, seed: { type: 'string', default: '1' } },
});
const total = Number(values.requests);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run fuzz does)');

function memory(): string {
  gc!();
  const { rss, heapUsed } = process.memoryUsage();
  return `rss ${Math.round(rss / 2 ** 20)} MB, heap in use after GC ${Math.round(heapUsed / 2 ** 20)} MB`;
}

const dir = await mkdtemp(join(tmpdir(), 'dbupdate-fuzz-'));
const stops: (() => Promise<void>)[] = [];
try {
  const clusters = await startClusterPair(dir);
  stops.push(clusters.stop);
  const { centralUrl, edgeUrl } = clusters;
  const pool = createPool(centralUrl, { max: 4, applicationName: 'fuzz' });
  stops.push(() => pool.end());
  const { mac, secret } = await prepareDemoCentral(pool, 200);
  const keys = generateSigningKeys();
  const silent = createLogger('fuzz', 'silent');
  const central = await startCentralServer(
    loadCentralConfig({
      CENTRAL_DATABASE_URL: centralUrl,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
      MANIFEST_SIGNING_KEY: keys.privateKey,
      // One source sends everything here: its own budget would shed most of the fuzz.
      RATE_LIMIT_PER_SOURCE_PER_MINUTE: '10000000',
      // The edge's /sync/now runs real syncs; at 30 a minute it would wait out Retry-After.
      RATE_LIMIT_PER_DEVICE_PER_MINUTE: '100000',
      ADMIN_TOKEN,
    }),
    silent,
  );
  stops.push(central.stop);
  const world = await prepareFuzzWorld(pool, central.url, ADMIN_TOKEN, [mac]);
  const edge = await startEdge(
    loadEdgeConfig({
      EDGE_DATABASE_URL: edgeUrl,
      CENTRAL_URL: central.url,
      DEVICE_MAC: mac,
      DEVICE_TOKEN: secret,
      MANIFEST_PUBLIC_KEYS: keys.publicKey,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
      SYNC_INTERVAL_SECONDS: '3600',
    }),
    silent,
  );
  stops.push(edge.stop);
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model}; Node ${process.version}`);
  console.log(`start: ${memory()}`);

  const statuses = new Map<number, number>();
  const problems: string[] = [];
  let sent = 0;
  const started = performance.now();
  const run = async (c: FuzzCase) => {
    const answer = await sendCase(c.target === 'central' ? central.url : edge.url, c);
    statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
    const problem = judge(c, answer);
    if (problem) problems.push(`${c.target} ${c.method} ${c.path.slice(0, 60)}: ${problem}`);
  };
  const batch: FuzzCase[] = [];
  for (const c of fuzzCases(total, Number(values.seed), ['central', 'edge'], world)) {
    batch.push(c);
    if (batch.length === 16) await Promise.all(batch.splice(0).map(run));
    if (++sent % Math.round(total / 3) === 0) console.log(`after ${sent}: ${memory()}`);
  }
  await Promise.all(batch.map(run));
  const seconds = (performance.now() - started) / 1000;
  console.log(`${total} requests in ${seconds.toFixed(1)} s (${Math.round(total / seconds)}/s)`);
  console.log(`by status: ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`);
  console.log(`off the documented shape: ${problems.length}`);
  for (const p of problems.slice(0, 20)) console.log(`  ${p}`);

  // The ack flood: a real manifest, wrong credentials, random MACs (so no per-device budget
  // applies): each needs a credential check. Meanwhile the real device times its snapshots.
  const { rows } = await pool.query<{ id: string }>(
    'SELECT manifest_id AS id FROM sync_manifest_headers LIMIT 1',
  );
  const manifestId = rows[0]!.id;
  // The fuzz may have disabled or revoked the device as the admin (its MAC is one it tries):
  // served again, with a new credential, so the flood is timed against real snapshots.
  await changeDevice(pool, mac, 'enable', 'fuzz');
  const { secret: renewed } = await enrollDevice(pool, mac);
  const snapshot = async () => {
    const t = performance.now();
    const res = await fetch(`${central.url}/api/device-sync/request`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${renewed}`,
        'accept-encoding': 'gzip',
      },
      body: JSON.stringify({ mac }),
    });
    await res.arrayBuffer();
    return { ms: performance.now() - t, status: res.status };
  };
  const idle: number[] = [];
  for (let i = 0; i < 5; i++) idle.push((await snapshot()).ms);
  const floodStarted = performance.now();
  const ackStatuses = new Map<number, number>();
  let flooding = true;
  const during: { ms: number; status: number }[] = [];
  const timing = (async () => {
    while (flooding) during.push(await snapshot());
  })();
  for (let i = 0; i < 5000; i += 32) {
    await Promise.all(
      Array.from({ length: 32 }, async (_, j) => {
        const n = i + j;
        const res = await fetch(`${central.url}/api/device-sync/ack`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer dbu1_wrong-${n}` },
          body: JSON.stringify({
            manifestId,
            mac: `02:aa:${[n >> 16, (n >> 8) & 255, n & 255, 0].map((b) => b.toString(16).padStart(2, '0')).join(':')}`,
            status: 'Failed',
            localCounts: {},
            localChecksums: {},
            durationMs: 1,
            error: null,
          }),
        });
        await res.arrayBuffer();
        ackStatuses.set(res.status, (ackStatuses.get(res.status) ?? 0) + 1);
      }),
    );
  }
  flooding = false;
  await timing;
  const floodSeconds = (performance.now() - floodStarted) / 1000;
  const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)] ?? NaN;
  console.log(
    `ack flood: ${[...ackStatuses.values()].reduce((a, b) => a + b, 0)} wrong credentials in ${floodSeconds.toFixed(1)} s, by status ${JSON.stringify(Object.fromEntries(ackStatuses))}; ${memory()}`,
  );
  console.log(
    `the device's gzip snapshot: median ${median(idle).toFixed(0)} ms idle, ${median(during.map((d) => d.ms)).toFixed(0)} ms (max ${Math.max(...during.map((d) => d.ms)).toFixed(0)}) during the flood, ${during.length} taken, statuses ${JSON.stringify([...new Set(during.map((d) => d.status))])}`,
  );
  const health = await fetch(`${central.url}/healthz`);
  console.log(
    `central still serving: ${health.status}; edge: ${(await fetch(`${edge.url}/healthz`)).status}`,
  );
  process.exitCode = problems.length === 0 && !statuses.has(500) ? 0 : 1;
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}
