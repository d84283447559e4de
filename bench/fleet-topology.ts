/**
 * Where the fleet bench's Central runs. `single`: one Central process on one embedded
 * PostgreSQL. `scale-out`: what docs/scaling.md describes, on Debian's engines: a
 * PostgreSQL 15 primary and its pg_basebackup streaming replica, Redis for the budgets,
 * `centrals` Central processes behind haproxy. Both give the URL devices use, the
 * processes whose CPU is reported, and a way to kill one Central mid-run.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPool, type Pool } from '../src/platform/db.ts';
import { startEmbeddedCluster } from '../src/platform/embedded.ts';
import { startHaproxy, startRedis, startReplicatedPostgres, type Engine } from '../scripts/lib/engines.ts';
import { startCentralProcess } from './lib/central.ts';

export interface Topology {
  /** Where devices send their requests. */
  base: string;
  /** The database to seed and to edit (the primary). */
  pool: Pool;
  /** Processes whose CPU is reported, by name (a PostgreSQL is its postmaster and backends). */
  central: Record<string, number>;
  postgres: Record<string, number>;
  other: Record<string, number>;
  /** Central's /metrics URLs. */
  metrics: string[];
  startCentrals(env: Record<string, string>): Promise<void>;
  /** SIGKILLs the first Central (scale-out only). */
  killOne(): void;
  stop(): Promise<void>;
}

async function postmasterOf(dataDir: string): Promise<number> {
  return Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
}

export async function singleTopology(): Promise<Topology> {
  const dir = await mkdtemp(join(tmpdir(), 'dbupdate-fleet-'));
  const cluster = await startEmbeddedCluster({
    dataDir: dir,
    name: 'pg',
    settings: ['shared_preload_libraries=pg_stat_statements', 'pg_stat_statements.track_planning=on'],
  });
  const url = await cluster.createDatabase('central');
  const pool = createPool(url, { applicationName: 'fleet', max: 8 });
  const children: ChildProcess[] = [];
  const t: Topology = {
    base: '',
    pool,
    central: {},
    postgres: { postgres: await postmasterOf(join(dir, 'pg')) },
    other: {},
    metrics: [],
    async startCentrals(env) {
      const c = await startCentralProcess({ ...env, CENTRAL_DATABASE_URL: url });
      children.push(c.child);
      t.base = c.url;
      t.central.central = c.child.pid!;
      t.metrics.push(`${c.url}/metrics`);
    },
    killOne() {
      throw new Error('--kill-one-at needs --topology scale-out');
    },
    async stop() {
      for (const c of children) c.kill('SIGTERM');
      await pool.end();
      await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return t;
}

export async function scaledOutTopology(centrals: number): Promise<Topology> {
  const pgs = await startReplicatedPostgres();
  let redis: Engine | undefined;
  let haproxy: Engine | undefined;
  const children: ChildProcess[] = [];
  const pool = createPool(pgs.primary.url, { applicationName: 'fleet', max: 8 });
  const t: Topology = {
    base: '',
    pool,
    central: {},
    postgres: {
      primary: await postmasterOf(pgs.primary.dataDir),
      replica: await postmasterOf(pgs.replica.dataDir),
    },
    other: {},
    metrics: [],
    async startCentrals(env) {
      redis = await startRedis();
      const started = await Promise.all(
        Array.from({ length: centrals }, () =>
          startCentralProcess({
            ...env,
            CENTRAL_DATABASE_URL: pgs.primary.url,
            CENTRAL_READ_DATABASE_URL: pgs.replica.url,
            RATE_LIMIT_REDIS_URL: redis!.url,
          }),
        ),
      );
      for (const [i, c] of started.entries()) {
        children.push(c.child);
        t.central[`central${i + 1}`] = c.child.pid!;
        t.metrics.push(`${c.url}/metrics`);
      }
      haproxy = await startHaproxy(started.map((c) => new URL(c.url).host));
      t.base = haproxy.url;
      t.other = { haproxy: haproxy.process.pid!, redis: redis.process.pid! };
    },
    killOne() {
      children[0]!.kill('SIGKILL');
      t.metrics.shift();
    },
    async stop() {
      for (const c of children) c.kill('SIGTERM');
      await haproxy?.stop();
      await redis?.stop();
      await pool.end();
      pgs.close();
    },
  };
  return t;
}
