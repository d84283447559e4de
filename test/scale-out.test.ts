/**
 * Central scaled out on real engines (Debian's packages), as a fleet operator runs it: a
 * PostgreSQL primary and a streaming replica made by pg_basebackup, two Central processes
 * behind haproxy, their per-device budgets shared in Redis, and edges syncing through the
 * balancer. Snapshots are read on the replica; a replica behind a scope, or down, is read
 * on the primary; an ack lands on either Central; the budget holds across both; and when
 * one Central is killed in the middle of a round, every device still syncs within its
 * retries and no audit row is lost.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { centralMigrations } from '../src/central/migrations.ts';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { createPool, type Pool } from '../src/platform/db.ts';
import { freePort } from '../src/platform/embedded.ts';
import { migrate } from '../src/platform/migrate.ts';
import {
  missingEngines,
  startHaproxy,
  startRedis,
  startReplicatedPostgres,
  type Engine,
  type ReplicatedPostgres,
} from '../scripts/lib/engines.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { centralScopeRows, edgeRows, testSyncer } from './helpers/edge.ts';
import { TEST_KEYS } from './helpers/keys.ts';
import { ackSuccess } from './helpers/snapshot.ts';
import type { Manifest } from '../src/contract/wire.ts';
import { waitFor } from './helpers/wait.ts';

const missing = missingEngines();
// CI installs the engines (.ci/run); elsewhere the suite says what is missing.
const engines = missing && !process.env.CI ? { skip: `needs ${missing}` } : {};
const ADMIN = 'admin-token-for-the-scale-out-test';
const PER_DEVICE = 12;

interface CentralProcess {
  url: string;
  child: ChildProcess;
  output: () => string;
}

async function startCentralProcess(env: Record<string, string>): Promise<CentralProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['bin/dbupdate.ts', 'central', 'serve'], {
    env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    () =>
      fetch(`${url}/readyz`).then(
        (r) => r.status,
        () => 0,
      ),
    (status) => status === 200 || child.exitCode !== null,
    30_000,
  );
  if (child.exitCode !== null) throw new Error(`Central exited: ${out}`);
  return { url, child, output: () => out };
}

/** A Central's snapshot reads, by database and reason, from its /metrics. */
async function snapshotReads(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const [, labels, value] of text.matchAll(
    /^dbupdate_central_snapshot_reads_total\{([^}]*)\} (\S+)$/gm,
  )) {
    const reason = /reason="([a-z_]+)"/.exec(labels!)![1]!;
    out[reason] = (out[reason] ?? 0) + Number(value);
  }
  return out;
}

describe('Central scaled out: replica, two Centrals behind haproxy, Redis', engines, () => {
  let pgs: ReplicatedPostgres;
  let redis: Engine;
  let haproxy: Engine;
  let primary: Pool;
  let replica: Pool;
  const centrals: CentralProcess[] = [];
  const edges: TestDatabase[] = [];
  const macs: string[] = [];
  const tokens = new Map<string, string>();

  const fleet = () => macs.slice(0, -1); // the last device is kept for the budget check
  const syncer = (i: number) =>
    testSyncer(edges[i]!, haproxy.url, macs[i]!, tokens.get(macs[i]!)!, { HTTP_RETRY_ATTEMPTS: '3' });
  const readsOf = async () => {
    const all = await Promise.all(
      centrals.filter((c) => c.child.exitCode === null).map((c) => snapshotReads(c.url)),
    );
    return all.reduce<Record<string, number>>((sum, r) => {
      for (const [k, v] of Object.entries(r)) sum[k] = (sum[k] ?? 0) + v;
      return sum;
    }, {});
  };
  const replicaCaughtUp = async () => {
    const { rows } = await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    await waitFor(
      async () =>
        (
          await replica.query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [
            rows[0]!.lsn,
          ])
        ).rows[0]!.ok,
      (ok) => ok,
      10_000,
    );
  };
  const editScopeOf = async (mac: string) =>
    primary.query(
      `UPDATE users SET display_name = display_name || '+', updated_at = now()
        WHERE id = (SELECT gu.user_id FROM group_users gu JOIN location_groups lg ON lg.group_id = gu.group_id
                      JOIN devices d ON d.location_id = lg.location_id WHERE d.mac = $1::macaddr
                     ORDER BY gu.user_id LIMIT 1)`,
      [mac],
    );
  const holdsPrimary = async (i: number) =>
    assert.deepEqual(await edgeRows(edges[i]!.pool), await centralScopeRows(primary, macs[i]!), macs[i]);

  before(async () => {
    pgs = await startReplicatedPostgres();
    redis = await startRedis();
    primary = createPool(pgs.primary.url, { max: 5, applicationName: 'test-primary' });
    replica = createPool(pgs.replica.url, { max: 2, applicationName: 'test-replica' });
    await migrate(primary, await centralMigrations());
    const seeded = await seedCentral(
      primary,
      { ...DEFAULT_SHAPE, companies: 1, locationsPerCompany: 2, devicesPerLocation: 4, usersPerCompany: 80 },
      { reset: false },
    );
    for (const d of seeded.devices) {
      macs.push(d.mac);
      tokens.set(d.mac, (await enrollDevice(primary, d.mac)).secret);
      edges.push(await createTestDatabase('edge'));
    }
    const env = {
      CENTRAL_DATABASE_URL: pgs.primary.url,
      CENTRAL_READ_DATABASE_URL: pgs.replica.url,
      RATE_LIMIT_REDIS_URL: redis.url,
      RATE_LIMIT_PER_DEVICE_PER_MINUTE: String(PER_DEVICE),
      MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey,
      ADMIN_TOKEN: ADMIN,
      LOG_LEVEL: 'warn',
    };
    centrals.push(...(await Promise.all([startCentralProcess(env), startCentralProcess(env)])));
    // Round robin, so both Centrals serve every round (the stack keeps each device on one).
    haproxy = await startHaproxy(
      centrals.map((c) => new URL(c.url).host),
      'roundrobin',
    );
    await replicaCaughtUp();
  });
  after(async () => {
    for (const c of centrals) c.child.kill('SIGKILL');
    await haproxy?.stop();
    await redis?.stop();
    await primary?.end();
    await replica?.end();
    pgs?.close();
    for (const db of edges) await db[Symbol.asyncDispose]();
  });

  it('serves every device through the balancer, its snapshot read on the replica', async () => {
    const results = await Promise.all(fleet().map((_, i) => syncer(i).run('manual')));
    assert.deepEqual(
      results.map((r) => r.status),
      fleet().map(() => 'success'),
    );
    for (const i of fleet().keys()) await holdsPrimary(i);
    const reads = await readsOf();
    // At most one read for each manifest and one for a piece fetch balanced to the other Central
    // (the pieces are in the memory of the Central whose digest pass cut them); fewer when
    // devices that asked together had their locations read in one batch (SharedScopeReader).
    const n = fleet().length;
    assert.ok(reads.replica! >= 1 && reads.replica! <= 2 * n, JSON.stringify(reads));
    assert.equal(reads.primary ?? 0, 0, JSON.stringify(reads));
    // Round robin: both Centrals served.
    for (const c of centrals) assert.ok(((await snapshotReads(c.url)).replica ?? 0) > 0, c.url);
  });

  it('takes an ack on the other Central than the one that issued the manifest', async () => {
    const mac = fleet()[0]!;
    const res = await fetch(`${centrals[0]!.url}/api/device-sync/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.get(mac)}` },
      body: JSON.stringify({ mac }),
    });
    assert.equal(res.status, 200);
    const { manifest } = JSON.parse((await res.text()).split('\n')[0]!) as { manifest: Manifest };
    const ack = await ackSuccess(centrals[1]!.url, mac, manifest, tokens.get(mac)!);
    assert.equal(ack.status, 200, await ack.clone().text());
    assert.equal(((await ack.json()) as { result: string }).result, 'Success');
    const { rows } = await primary.query('SELECT result FROM sync_acknowledgements WHERE manifest_id = $1', [
      manifest.manifestId,
    ]);
    assert.deepEqual(rows, [{ result: 'Success' }]);
  });

  it('reads the primary for a scope the replica has not caught up with', async () => {
    const before = (await readsOf()).replica_behind ?? 0;
    await replica.query('SELECT pg_wal_replay_pause()');
    try {
      await editScopeOf(macs[1]!);
      const result = await syncer(1).run('manual');
      assert.equal(result.status, 'success', JSON.stringify(result.error));
      await holdsPrimary(1);
    } finally {
      await replica.query('SELECT pg_wal_replay_resume()');
    }
    // The manifest's session and the pieces' session: both found the replica behind.
    assert.equal((await readsOf()).replica_behind, before + 2);
  });

  it('reads the primary while the replica is down, and the replica again once it is back', async () => {
    pgs.replica.stop('immediate');
    try {
      await editScopeOf(macs[2]!);
      const result = await syncer(2).run('manual');
      assert.equal(result.status, 'success', JSON.stringify(result.error));
      await holdsPrimary(2);
      assert.ok(((await readsOf()).replica_down ?? 0) >= 1);
    } finally {
      pgs.replica.start();
    }
    await replicaCaughtUp();
  });

  it('holds the per-device budget across both Centrals through Redis', async () => {
    const mac = macs.at(-1)!;
    const statuses: number[] = [];
    for (let i = 0; i < PER_DEVICE + 4; i++) {
      const res = await fetch(`${centrals[i % 2]!.url}/api/device-sync/request`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.get(mac)}` },
        body: JSON.stringify({ mac }),
      });
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    // Each Central alone would allow PER_DEVICE; together they allow PER_DEVICE, not twice that.
    assert.equal(statuses.filter((s) => s === 200).length, PER_DEVICE, statuses.join(','));
    assert.deepEqual(statuses.slice(PER_DEVICE), [429, 429, 429, 429]);
  });

  it('keeps every device syncing when one Central is killed mid-round, and loses no audit row', async () => {
    for (const mac of fleet()) await editScopeOf(mac);
    await replicaCaughtUp();
    const round = Promise.all(fleet().map((_, i) => syncer(i).run('manual')));
    await new Promise((r) => setTimeout(r, 30));
    centrals[0]!.child.kill('SIGKILL');
    const first = await round;
    // A sync cut mid-stream by the kill fails with the old data kept; the next one completes.
    const second = await Promise.all(fleet().map((_, i) => syncer(i).run('manual')));
    for (const [i, r] of second.entries()) {
      assert.ok(r.status === 'success' || r.status === 'unchanged', `${macs[i]}: ${JSON.stringify(r.error)}`);
      assert.ok(first[i]!.status !== 'failed' || r.status === 'success', macs[i]);
      await holdsPrimary(i);
    }
    // Every manifest an edge saw is in Central's audit, with its request row; every ack was taken.
    for (const [i, edge] of edges.slice(0, fleet().length).entries()) {
      const { rows: seen } = await edge.pool.query<{ manifest_id: string; status: string }>(
        'SELECT manifest_id, status FROM edge_sync_log WHERE manifest_id IS NOT NULL',
      );
      const ids = seen.map((r) => r.manifest_id);
      const { rows: audited } = await primary.query<{ n: number; acked: number }>(
        `SELECT count(*)::int AS n, count(a.manifest_id)::int AS acked
           FROM sync_manifest_headers h JOIN sync_requests q ON q.manifest_id = h.manifest_id
           LEFT JOIN sync_acknowledgements a ON a.manifest_id = h.manifest_id
          WHERE h.manifest_id = ANY($1::text[])`,
        [ids],
      );
      assert.deepEqual(audited[0], { n: ids.length, acked: ids.length }, macs[i]);
      const pending = await edge.pool.query('SELECT count(*)::int AS n FROM edge_pending_acks');
      assert.equal(pending.rows[0].n, 0, `${macs[i]}: acks still pending`);
    }
  });
});
