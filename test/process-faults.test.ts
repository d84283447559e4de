/**
 * Process faults: the edge killed at each point of a load, Central killed mid-response,
 * the edge's PostgreSQL restarted mid-load, Central's PostgreSQL down during a request.
 * Each leaves the edge's old data intact, and the next sync succeeds.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { edgeMigrations } from '../src/edge/migrations.ts';
import { createPool, type Pool } from '../src/platform/db.ts';
import { freePort, startEmbeddedCluster, type EmbeddedCluster } from '../src/platform/embedded.ts';
import { migrate } from '../src/platform/migrate.ts';
import { seedOneScope, startCentral, type RunningCentral } from './helpers/central.ts';
import { startFaultProxy } from './helpers/proxy.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { fingerprint, testSyncer } from './helpers/edge.ts';
import { TEST_KEYS } from './helpers/keys.ts';
import { waitFor } from './helpers/wait.ts';

const USERS = 60_000;

async function childBackend(pool: Pool, app: string, like: string): Promise<boolean> {
  const { rows } = await pool.query(
    `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 AND query LIKE $2`,
    [app, like],
  );
  return rows.length > 0;
}

describe('process faults', () => {
  let central: TestDatabase;
  let api: RunningCentral;
  let mac: string;
  let token: string;

  before(async () => {
    central = await createTestDatabase('central');
    ({ mac, token } = await seedOneScope(central, USERS));
    api = await startCentral(central);
  });
  after(async () => {
    await api?.[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
  });

  const changeCentral = () =>
    central.pool.query(
      `UPDATE users SET updated_at = now() WHERE ctid IN (SELECT ctid FROM users LIMIT 500)`,
    );

  function edgeSyncProcess(
    edgeUrl: string,
    centralUrl: string,
  ): { child: ChildProcess; exited: Promise<unknown> } {
    const child = spawn(process.execPath, ['bin/dbupdate.ts', 'edge', 'sync'], {
      env: {
        ...process.env,
        EDGE_DATABASE_URL: edgeUrl,
        CENTRAL_URL: centralUrl,
        DEVICE_MAC: mac,
        DEVICE_TOKEN: token,
        MANIFEST_PUBLIC_KEYS: TEST_KEYS.publicKey,
        LOG_LEVEL: 'warn',
        LOG_FORMAT: 'json',
      },
      stdio: 'ignore',
    });
    return { child, exited: new Promise((resolve) => child.on('exit', resolve)) };
  }

  describe('edge killed with SIGKILL', () => {
    let edge: TestDatabase;
    before(async () => {
      edge = await createTestDatabase('edge');
      const first = await testSyncer(edge, api.url, mac, token).run('cli');
      assert.equal(first.status, 'success', JSON.stringify(first.error));
    });
    after(async () => edge?.[Symbol.asyncDispose]());

    // Each point is reached either by holding a lock the child must wait for (exact), or
    // by watching for the child's statement (a phase long enough to be caught).
    const points: { name: string; lock?: string; query?: string }[] = [
      { name: 'before COPY (emptying the tables)', lock: 'devices' },
      { name: 'mid-COPY', query: 'COPY "users"%' },
      { name: 'during verify', query: 'COPY (SELECT%FROM "users"%' },
      { name: 'just before commit (writing the ledger)', lock: 'edge_sync_state' },
    ];
    for (const point of points) {
      it(`${point.name}: old data intact, next sync succeeds`, async () => {
        await changeCentral();
        const before = await fingerprint(edge.pool);
        const holder = point.lock ? await edge.pool.connect() : undefined;
        try {
          if (holder) {
            await holder.query('BEGIN');
            await holder.query(`LOCK TABLE "${point.lock}" IN ACCESS EXCLUSIVE MODE`);
          }
          const { child, exited } = edgeSyncProcess(edge.url, api.url);
          const caught = await waitFor(
            async () =>
              holder
                ? (
                    await edge.pool.query(
                      `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'dbupdate-cli'
                          AND wait_event_type = 'Lock'`,
                    )
                  ).rows.length > 0
                : childBackend(edge.pool, 'dbupdate-cli', point.query!),
            (ok) => ok,
            30_000,
          );
          assert.ok(caught);
          child.kill('SIGKILL');
          await exited;
        } finally {
          await holder?.query('ROLLBACK');
          holder?.release();
        }
        await waitFor(
          () => childBackend(edge.pool, 'dbupdate-cli', '%'),
          (alive) => !alive,
          10_000,
        );
        assert.equal(await fingerprint(edge.pool), before, 'old data intact');
        const next = await testSyncer(edge, api.url, mac, token).run('cli');
        assert.equal(next.status, 'success', JSON.stringify(next.error));
        assert.notEqual(await fingerprint(edge.pool), before);
        const { rows } = await edge.pool.query(
          `SELECT status, error_code FROM edge_sync_log WHERE id < $1 ORDER BY id DESC LIMIT 1`,
          [next.syncId],
        );
        assert.deepEqual(rows, [{ status: 'failed', error_code: 'SYNC_INTERRUPTED' }]);
      });
    }
  });

  it('Central killed mid-response: the edge keeps its data, records the failure, and recovers', async () => {
    await using edge = await createTestDatabase('edge');
    const first = await testSyncer(edge, api.url, mac, token).run('cli');
    assert.equal(first.status, 'success');
    await changeCentral();
    const before = await fingerprint(edge.pool);
    const port = await freePort();
    const centralProc = spawn(process.execPath, ['bin/dbupdate.ts', 'central', 'serve'], {
      env: {
        ...process.env,
        CENTRAL_DATABASE_URL: central.url,
        PORT: String(port),
        HOST: '127.0.0.1',
        MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey,
        LOG_LEVEL: 'warn',
        LOG_FORMAT: 'json',
      },
      stdio: 'ignore',
    });
    const centralExit = new Promise((resolve) => centralProc.on('exit', resolve));
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok ?? false,
      (ok) => ok,
      20_000,
    );
    // The pieces go through a throttled proxy, so Central is surely still sending when it dies
    // (what it sent before dying, buffered on the way, still arrives: keep the throttle brisk).
    const proxy = await startFaultProxy(`http://127.0.0.1:${port}`);
    let result;
    try {
      proxy.fault = { kind: 'throttle', bytesPerSecond: 2_000_000 };
      const sync = testSyncer(edge, proxy.url, mac, token).run('cli');
      await waitFor(
        async () => proxy.relayed,
        (relayed) => relayed > 1_000_000,
        30_000,
      );
      centralProc.kill('SIGKILL');
      await centralExit;
      result = await sync;
    } finally {
      await proxy.close();
    }
    assert.equal(result.status, 'failed');
    // Resuming found no Central (the proxy takes the connection and drops it: a cut): the sync
    // gives up after a few tries, its pieces kept.
    assert.ok(['TRANSFER_CUT', 'CENTRAL_UNREACHABLE'].includes(result.error!.code), result.error?.message);
    assert.equal(await fingerprint(edge.pool), before);
    const healed = await testSyncer(edge, api.url, mac, token).run('cli');
    assert.equal(healed.status, 'success');
    assert.ok(healed.transfer!.piecesReused > 0, 'the pieces received before the kill were used');
  });

  describe('PostgreSQL restarts', () => {
    let dir: string;
    let cluster: EmbeddedCluster;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'dbupdate-restart-'));
      cluster = await startEmbeddedCluster({ dataDir: dir, name: 'pg', persistent: true });
    });
    after(async () => {
      await cluster?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    it("edge's PostgreSQL restarted mid-load: old data intact after recovery, next sync succeeds", async () => {
      const admin = new pg.Client({ connectionString: cluster.url });
      await admin.connect();
      await admin.query('CREATE DATABASE edge');
      await admin.end();
      const url = cluster.url.replace(/\/postgres$/, '/edge');
      let pool = createPool(url, { applicationName: 'test-edge' });
      await migrate(pool, await edgeMigrations());
      const db = { url, pool } as TestDatabase;
      assert.equal((await testSyncer(db, api.url, mac, token).run('cli')).status, 'success');
      await changeCentral();
      const before = await fingerprint(pool);
      const watcher = createPool(url, { applicationName: 'watcher', max: 1 });
      const sync = testSyncer(db, api.url, mac, token)
        .run('cli')
        .catch((err: Error) => err);
      await waitFor(
        () => childBackend(watcher, 'test-edge', 'COPY "users"%'),
        (ok) => ok,
        30_000,
      );
      await watcher.end();
      await cluster.stop();
      const outcome = await sync;
      assert.ok(outcome instanceof Error || outcome.status === 'failed', 'the sync did not complete');
      await cluster.restart();
      await pool.end();
      pool = createPool(url, { applicationName: 'test-edge' });
      const again = { url, pool } as TestDatabase;
      assert.equal(await fingerprint(pool), before, 'crash recovery kept the old data');
      const next = await testSyncer(again, api.url, mac, token).run('cli');
      assert.equal(next.status, 'success', JSON.stringify(next.error));
      const { rows } = await pool.query(
        `SELECT count(*)::int AS n FROM edge_sync_log WHERE status = 'running'`,
      );
      assert.equal(rows[0].n, 0, 'the interrupted sync was closed');
      await pool.end();
    });

    it("Central's PostgreSQL restarted mid-stream: edge data as it was, both records kept, next sync recovers", async () => {
      const admin = new pg.Client({ connectionString: cluster.url });
      await admin.connect();
      await admin.query('CREATE DATABASE central_midstream TEMPLATE template0');
      await admin.end();
      const url = cluster.url.replace(/\/postgres$/, '/central_midstream');
      const pool = createPool(url, { applicationName: 'test-central' });
      try {
        const { centralMigrations } = await import('../src/central/migrations.ts');
        await migrate(pool, await centralMigrations());
        const seeded = await seedCentral(
          pool,
          // More rows than the socket buffers between Central and the edge can hold, so
          // Central's COPY is still running when the database goes away.
          { ...DEFAULT_SHAPE, companies: 1, locationsPerCompany: 1, usersPerCompany: 150_000 },
          { reset: false },
        );
        const m = seeded.devices[0]!.mac;
        const secret = (await enrollDevice(pool, m)).secret;
        await using app = await startCentral({ url, pool } as TestDatabase);
        await using edgeDb = await createTestDatabase('edge');
        const proxy = await startFaultProxy(app.url);
        try {
          assert.equal((await testSyncer(edgeDb, app.url, m, secret).run('cli')).status, 'success');
          await pool.query(`UPDATE users SET display_name = display_name || ' +', updated_at = now()`);
          const before = await fingerprint(edgeDb.pool);
          proxy.fault = { kind: 'throttle', bytesPerSecond: 4_000_000 };
          const watcher = createPool(url, { applicationName: 'watcher', max: 1 });
          const sync = testSyncer(edgeDb, proxy.url, m, secret, { HTTP_STALL_TIMEOUT_SECONDS: '5' }).run(
            'cli',
          );
          // Central is inside the pieces' COPY, held back by the slow link (its backend waits to
          // write to Central), rows already on their way, when its database goes away.
          await waitFor(
            async () =>
              proxy.relayed > 100_000 &&
              (
                await watcher.query(
                  `SELECT 1 FROM pg_stat_activity WHERE application_name = 'central-snapshots'
                      AND query LIKE 'COPY (%' AND wait_event = 'ClientWrite'`,
                )
              ).rows.length > 0,
            (ok) => ok,
            60_000,
          );
          await watcher.end();
          await cluster.stop();
          const outcome = await sync;
          assert.equal(outcome.status, 'failed');
          assert.equal(await fingerprint(edgeDb.pool), before, 'the edge kept exactly its old data');
          const { rows: ledger } = await edgeDb.pool.query(
            `SELECT status, manifest_id FROM edge_sync_log ORDER BY id DESC LIMIT 1`,
          );
          assert.equal(ledger[0].status, 'failed');
          await cluster.restart();
          proxy.fault = { kind: 'none' };
          const next = await waitFor(
            () => testSyncer(edgeDb, app.url, m, secret).run('cli'),
            (r) => r.status === 'success',
            30_000,
          );
          assert.equal(next.status, 'success');
          // The interrupted request's records are there, written before any byte was sent: its
          // manifest, and its request row (left open by the outage, for the sweeper to close).
          const { rows: manifest } = await pool.query(
            'SELECT 1 FROM sync_manifest_headers WHERE manifest_id = $1',
            [ledger[0].manifest_id],
          );
          assert.equal(manifest.length, 1, 'the interrupted manifest was audited');
          const { rows: open } = await pool.query(
            "SELECT count(*)::int AS n FROM sync_piece_fetches WHERE manifest_id = $1 AND status IN ('started', 'error', 'aborted')",
            [ledger[0].manifest_id],
          );
          assert.ok(open[0].n >= 1, 'the interrupted piece fetch was audited');
        } finally {
          await proxy.close();
        }
      } finally {
        await pool.end();
      }
    });

    it("Central's PostgreSQL down: a clear 503, the lost audit counted, service back when it is", async () => {
      const admin = new pg.Client({ connectionString: cluster.url });
      await admin.connect();
      await admin.query('CREATE DATABASE central_restart TEMPLATE template0');
      await admin.end();
      const url = cluster.url.replace(/\/postgres$/, '/central_restart');
      const pool = createPool(url, { applicationName: 'test-central' });
      try {
        const { centralMigrations } = await import('../src/central/migrations.ts');
        await migrate(pool, await centralMigrations());
        const seeded = await seedCentral(pool, { ...DEFAULT_SHAPE, usersPerCompany: 50 }, { reset: false });
        const m = seeded.devices[0]!.mac;
        const secret = (await enrollDevice(pool, m)).secret;
        await using app = await startCentral({ url, pool } as TestDatabase);
        const ask = () =>
          fetch(`${app.url}/api/device-sync/request`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
            body: JSON.stringify({ mac: m }),
          });
        assert.equal((await ask().then(async (r) => (await r.arrayBuffer(), r))).status, 200);
        await cluster.stop();
        const down = await ask();
        assert.equal(down.status, 503);
        assert.equal(down.headers.get('retry-after'), '5');
        assert.equal(((await down.json()) as { error: { code: string } }).error.code, 'DATABASE_UNAVAILABLE');
        const metrics = await (await fetch(`${app.url}/metrics`)).text();
        assert.match(metrics, /^dbupdate_central_audit_write_failures_total [1-9]/m);
        await cluster.restart();
        const back = await waitFor(
          async () => await ask().then(async (r) => (await r.arrayBuffer(), r.status)),
          (s) => s === 200,
          20_000,
        );
        assert.equal(back, 200);
      } finally {
        await pool.end();
      }
    });
  });
});
