/**
 * `npm run fleet [-- --devices 1000 --interval 300 --seconds 120]`: one Central process
 * and a simulated fleet in this process. Each device requests its snapshot on its own
 * schedule (offering the global hash it holds, as an edge does), reads it to the end and
 * acks; Central's data changes a little every 10 s. Reports request latency (to the last
 * byte), throughput, failures, and Central's CPU and memory. Loopback only, bounded.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { centralMigrations } from '../src/central/migrations.ts';
import { enrollDevice } from '../src/central/services/enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/services/seed.ts';
import { generateSigningKeys } from '../src/contract/signing.ts';
import { createPool } from '../src/platform/db.ts';
import { freePort, startEmbeddedCluster } from '../src/platform/embedded.ts';
import { migrate } from '../src/platform/migrate.ts';
import { imageNodeArgs, imageNodeEnv, warmCompileCache } from './image.ts';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    interval: { type: 'string', default: '300' },
    seconds: { type: 'string', default: '120' },
  },
});
warmCompileCache();
const devices = Math.min(5000, Number(values.devices));
const intervalMs = Number(values.interval) * 1000;
const durationMs = Math.min(1800, Number(values.seconds)) * 1000;

async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 10 ms
}
async function rssMb(pid: number): Promise<number> {
  return Math.round(
    Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024,
  );
}
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;

const dir = await mkdtemp(join(tmpdir(), 'dbupdate-fleet-'));
const cluster = await startEmbeddedCluster({ dataDir: dir, name: 'pg' });
const keys = generateSigningKeys();
try {
  const url = await cluster.createDatabase('central');
  const pool = createPool(url, { applicationName: 'fleet', max: 8 });
  await migrate(pool, await centralMigrations());
  const perLocation = 10;
  const locations = Math.ceil(devices / perLocation / 10);
  await seedCentral(
    pool,
    {
      ...DEFAULT_SHAPE,
      companies: 10,
      locationsPerCompany: locations,
      devicesPerLocation: perLocation,
      usersPerCompany: 1000,
      groupsPerCompany: 10,
    },
    { reset: false },
  );
  const { rows } = await pool.query<{ mac: string }>(
    'SELECT mac::text AS mac FROM devices ORDER BY mac LIMIT $1',
    [devices],
  );
  const fleet: { mac: string; token: string; known: string | null }[] = [];
  for (let i = 0; i < rows.length; i += 16) {
    const batch = await Promise.all(
      rows
        .slice(i, i + 16)
        .map(async ({ mac }) => ({ mac, token: (await enrollDevice(pool, mac)).secret, known: null })),
    );
    fleet.push(...batch);
  }
  const port = await freePort();
  const central = spawn(process.execPath, [...imageNodeArgs(), 'central', 'serve'], {
    env: {
      ...process.env,
      ...imageNodeEnv(),
      CENTRAL_DATABASE_URL: url,
      PORT: String(port),
      HOST: '127.0.0.1',
      MANIFEST_SIGNING_KEY: keys.privateKey,
      RATE_LIMIT_PER_DEVICE_PER_MINUTE: '1000',
      RATE_LIMIT_GLOBAL_PER_MINUTE: '10000000',
      LOG_LEVEL: 'error',
      LOG_FORMAT: 'json',
    },
    stdio: 'ignore',
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if ((await fetch(`${base}/readyz`).catch(() => undefined))?.ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const latencies: number[] = [];
  const statuses = new Map<string, number>();
  let bytes = 0;
  let loads = 0;
  const cpu0 = await cpuSeconds(central.pid!);
  const t0 = Date.now();
  const deadline = t0 + durationMs;
  const mutator = setInterval(() => {
    void pool.query(
      `UPDATE users SET updated_at = now() WHERE ctid IN (SELECT ctid FROM users TABLESAMPLE SYSTEM (1) LIMIT 5)`,
    );
  }, 10_000);

  async function syncOnce(device: (typeof fleet)[number]): Promise<void> {
    const started = performance.now();
    try {
      const res = await fetch(`${base}/api/device-sync/request`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${device.token}` },
        body: JSON.stringify({ mac: device.mac, knownGlobalSha256: device.known }),
      });
      const text = await res.text();
      latencies.push(performance.now() - started);
      statuses.set(String(res.status), (statuses.get(String(res.status)) ?? 0) + 1);
      if (!res.ok) return;
      bytes += text.length;
      const { manifest } = JSON.parse(text.slice(0, text.indexOf('\n'))) as {
        manifest: {
          manifestId: string;
          globalSha256: string;
          rowsIncluded: boolean;
          tables: { name: string; rowCount: number; sha256: string }[];
        };
      };
      if (manifest.rowsIncluded) loads++;
      device.known = manifest.globalSha256;
      await fetch(`${base}/api/device-sync/ack`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${device.token}` },
        body: JSON.stringify({
          manifestId: manifest.manifestId,
          mac: device.mac,
          status: 'Success',
          localCounts: Object.fromEntries(manifest.tables.map((t) => [t.name, t.rowCount])),
          localChecksums: Object.fromEntries(manifest.tables.map((t) => [t.name, t.sha256])),
          durationMs: 1,
          error: null,
        }),
      }).then((r) => r.arrayBuffer());
    } catch (err) {
      statuses.set(
        `error:${(err as Error).message}`,
        (statuses.get(`error:${(err as Error).message}`) ?? 0) + 1,
      );
    }
  }

  await Promise.all(
    fleet.map(async (device) => {
      // Spread over the interval, as SYNC_JITTER does for a real fleet.
      await new Promise((r) => setTimeout(r, Math.random() * intervalMs));
      while (Date.now() < deadline) {
        const began = Date.now();
        await syncOnce(device);
        await new Promise((r) => setTimeout(r, Math.max(0, intervalMs - (Date.now() - began))));
      }
    }),
  );
  clearInterval(mutator);
  const wall = (Date.now() - t0) / 1000;
  const cpu = (await cpuSeconds(central.pid!)) - cpu0;
  const rss = await rssMb(central.pid!);
  central.kill('SIGTERM');
  await pool.end();
  latencies.sort((a, b) => a - b);
  console.log(
    JSON.stringify(
      {
        devices: fleet.length,
        intervalSeconds: intervalMs / 1000,
        seconds: Math.round(wall),
        requests: latencies.length,
        requestsPerSecond: Math.round((latencies.length / wall) * 10) / 10,
        fullLoads: loads,
        statuses: Object.fromEntries(statuses),
        latencyMs: {
          p50: Math.round(percentile(latencies, 0.5)),
          p99: Math.round(percentile(latencies, 0.99)),
          max: Math.round(latencies.at(-1) ?? 0),
        },
        mibServed: Math.round(bytes / 2 ** 20),
        centralCpuPercentOfOneCore: Math.round((cpu / wall) * 100),
        centralRssMb: rss,
      },
      null,
      2,
    ),
  );
} finally {
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
}
