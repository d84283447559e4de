/** `edge serve`: a first sync at start, the schedule, POST /sync/now, GET /status and the probes. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { buildEdge, startEdge, type RunningEdge } from '../src/edge/server.ts';
import { createSyncer } from '../src/edge/syncer.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { edgeConfig, quietLog } from './helpers/edge.ts';

describe('edge service', () => {
  let central: TestDatabase;
  let edgeDb: TestDatabase;
  let api: RunningCentral;
  let edge: RunningEdge;
  let mac: string;

  before(async () => {
    central = await createTestDatabase('central');
    edgeDb = await createTestDatabase('edge');
    mac = (await seedCentral(central.pool, { ...DEFAULT_SHAPE, usersPerCompany: 2000 }, { reset: false }))
      .devices[0]!.mac;
    const token = (await enrollDevice(central.pool, mac)).secret;
    api = await startCentral(central);
    const config = edgeConfig(edgeDb, api.url, mac, token, {
      PORT: '0',
      HOST: '127.0.0.1',
      SYNC_INTERVAL_SECONDS: '1',
      SYNC_JITTER_SECONDS: '0',
    });
    edge = await startEdge(config, quietLog);
  });
  after(async () => {
    await edge?.stop();
    await api?.[Symbol.asyncDispose]();
    await edgeDb?.[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
  });

  async function ledger(): Promise<{ status: string; trigger: string }[]> {
    const { rows } = await edgeDb.pool.query('SELECT status, trigger FROM edge_sync_log ORDER BY id');
    return rows;
  }

  it('syncs at start and then on its schedule', async () => {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const rows = await ledger();
      if (rows.some((r) => r.trigger === 'schedule' && r.status !== 'running')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const rows = await ledger();
    assert.deepEqual(rows[0], { status: 'success', trigger: 'start' });
    assert.ok(
      rows.some((r) => r.trigger === 'schedule' && r.status === 'unchanged'),
      JSON.stringify(rows),
    );
  });

  it('answers probes, runs a sync on POST /sync/now and lists it on GET /status', async () => {
    assert.equal((await fetch(`${edge.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${edge.url}/readyz`)).status, 200);
    await central.pool.query(`UPDATE devices SET updated_at = now() WHERE mac = $1`, [mac]);
    let res: Response | undefined;
    // The schedule may hold the lock at this instant; /sync/now says so clearly.
    for (let i = 0; i < 50; i++) {
      res = await fetch(`${edge.url}/sync/now`, { method: 'POST' });
      if (res.status !== 409) break;
      const body = (await res.json()) as { error: { code: string } };
      assert.equal(body.error.code, 'SYNC_IN_PROGRESS');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(res!.status, 200);
    const result = (await res!.json()) as { status: string; syncId: string; tables: unknown[] };
    assert.ok(['success', 'unchanged'].includes(result.status), JSON.stringify(result));
    assert.equal(result.tables.length, 8);
    const status = (await (await fetch(`${edge.url}/status`)).json()) as {
      recent: { syncId: string; trigger: string }[];
      state: { lastGlobalSha256?: string };
    };
    assert.ok(status.recent.some((r) => r.syncId === result.syncId && r.trigger === 'manual'));
    assert.match(status.state.lastGlobalSha256 ?? '', /^[0-9a-f]{64}$/);
    const metrics = await (await fetch(`${edge.url}/metrics`)).text();
    assert.match(metrics, /^dbupdate_edge_syncs_total\{result="success",code=""\} [1-9]/m);
    assert.match(metrics, /^dbupdate_edge_last_success_timestamp_seconds \d/m);
  });

  it('answers /sync/now with 409 SYNC_IN_PROGRESS while a sync runs', async () => {
    await central.pool.query(`UPDATE devices SET updated_at = now() WHERE mac = $1`, [mac]);
    const answers = await Promise.all([1, 2, 3].map(() => fetch(`${edge.url}/sync/now`, { method: 'POST' })));
    const statuses = answers.map((a) => a.status);
    const background = await fetch(`${edge.url}/sync/now?wait=false`, { method: 'POST' });
    assert.ok([202, 409].includes(background.status), String(background.status));
    assert.ok(statuses.includes(409), JSON.stringify(statuses));
    for (const a of answers.filter((x) => x.status === 409)) {
      assert.equal(((await a.json()) as { error: { code: string } }).error.code, 'SYNC_IN_PROGRESS');
    }
  });

  describe('the local API', () => {
    const build = async (env: Record<string, string>) => {
      const config = edgeConfig(edgeDb, api.url, mac, 'unused-token-for-these-calls', env);
      return buildEdge(config, edgeDb.pool, createSyncer(config, edgeDb.pool, quietLog), false);
    };

    it('answers /sync/now and /status only to this machine without LOCAL_API_TOKEN', async () => {
      await using app = await build({});
      for (const [method, url] of [
        ['POST', '/sync/now?wait=false'],
        ['GET', '/status'],
      ] as const) {
        const remote = await app.inject({ method, url, remoteAddress: '192.0.2.7' });
        assert.equal(remote.statusCode, 401, url);
        assert.equal(remote.json().error.code, 'UNAUTHENTICATED');
      }
      assert.equal((await app.inject({ url: '/status', remoteAddress: '127.0.0.1' })).statusCode, 200);
      assert.equal((await app.inject({ url: '/metrics', remoteAddress: '192.0.2.7' })).statusCode, 200);
      assert.equal((await app.inject({ url: '/healthz', remoteAddress: '192.0.2.7' })).statusCode, 200);
    });

    it('answers anyone with the token when LOCAL_API_TOKEN is set, and nobody without it', async () => {
      const token = 'a-local-token-made-by-the-operator-0123';
      await using app = await build({ LOCAL_API_TOKEN: token });
      const without = await app.inject({ url: '/status', remoteAddress: '127.0.0.1' });
      assert.equal(without.statusCode, 401);
      const wrong = await app.inject({ url: '/status', headers: { authorization: 'Bearer nope-nope-nope' } });
      assert.equal(wrong.statusCode, 401);
      const right = await app.inject({
        url: '/status',
        remoteAddress: '192.0.2.7',
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(right.statusCode, 200);
    });
  });
});
