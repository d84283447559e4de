/**
 * `npm run bench:audit [-- --requests 1000000]`: fills an audit trail of N request rows
 * (and N/8 manifests with 8 table rows and an ack each) in an embedded PostgreSQL,
 * then times every dashboard query (median of 5 runs, warm cache) and the pruning of
 * the oldest month, and prints how each query reads the audit tables.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { deviceActivity, hourlyCounts, rowDeltas } from '../src/central/fleet/repo/admin.ts';
import { listDevices } from '../src/central/fleet/repo/device-admin.ts';
import { centralMigrations } from '../src/central/migrations.ts';
import { pruneAudit } from '../src/central/fleet/retention.ts';
import { createPool } from '../src/platform/db.ts';
import { startEmbeddedCluster } from '../src/platform/embedded.ts';
import { migrate } from '../src/platform/migrate.ts';
import { fillAuditTrail } from './lib/audit-fill.ts';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '1000000' } } });
const requests = Number(values.requests);
const dir = await mkdtemp(join(tmpdir(), 'dbupdate-bench-audit-'));
const cluster = await startEmbeddedCluster({ dataDir: dir, name: 'pg' });
const pool = createPool(await cluster.createDatabase('audit'), { max: 4, applicationName: 'bench-audit' });
const silent = { info() {}, warn() {}, debug() {}, error() {}, child: () => silent } as never;
try {
  await migrate(pool, await centralMigrations());
  let t = performance.now();
  await fillAuditTrail(pool, { devices: 1000, requests, manifests: Math.round(requests / 8) });
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model}; PostgreSQL embedded`);
  console.log(
    `filled ${requests} requests, ${Math.round(requests / 8)} manifests in ${Math.round(performance.now() - t)} ms\n`,
  );
  const mac = '02:00:00:00:01:2c';
  const queries: [string, () => Promise<unknown>][] = [
    ['requests and acks by hour, 48 h', () => hourlyCounts(pool, 48)],
    ['requests and acks by hour, 30 days', () => hourlyCounts(pool, 720)],
    [
      'devices without an ack in 24 h (1000 devices)',
      () => listDevices(pool, { staleHours: 24, limit: 200 }),
    ],
    ['row deltas of one device (30 manifests)', () => rowDeltas(pool, mac, 30)],
    ['device drill-down (4 queries)', () => deviceActivity(pool, mac, 50)],
  ];
  console.log('| query | median ms |');
  console.log('|---|---|');
  for (const [name, run] of queries) {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      t = performance.now();
      await run();
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    console.log(`| ${name} | ${times[2]!.toFixed(1)} |`);
  }
  t = performance.now();
  const pruned = await pruneAudit(pool, { olderThanDays: 60, batch: 10_000 }, silent);
  console.log(
    `\nprune-audit --days 60: ${JSON.stringify(pruned)} in ${Math.round(performance.now() - t)} ms`,
  );
} finally {
  await pool.end();
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
}
