/**
 * Signed manifests, key rotation, the lab MAC-only mode, rate limits, load shedding,
 * and faults on the wire that must never reach the edge's tables.
 */
import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { generateSigningKeys } from '../src/contract/signing.ts';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { centralScopeRows, edgeRows, testSyncer } from './helpers/edge.ts';
import { TEST_KEYS } from './helpers/keys.ts';
import { startFaultProxy, type FaultProxy } from './helpers/proxy.ts';
import { requestSnapshot } from './helpers/snapshot.ts';
import { waitFor } from './helpers/wait.ts';

describe('security and wire faults', () => {
  let central: TestDatabase;
  let edge: TestDatabase;
  let api: RunningCentral;
  let proxy: FaultProxy;
  let macs: string[];
  const tokens = new Map<string, string>();

  before(async () => {
    central = await createTestDatabase('central');
    edge = await createTestDatabase('edge');
    const seeded = await seedCentral(
      central.pool,
      {
        ...DEFAULT_SHAPE,
        companies: 1,
        locationsPerCompany: 2,
        usersPerCompany: 20_000,
        devicesPerLocation: 3,
      },
      { reset: false },
    );
    macs = seeded.devices.map((d) => d.mac);
    for (const mac of macs) tokens.set(mac, (await enrollDevice(central.pool, mac)).secret);
    api = await startCentral(central, { RATE_LIMIT_PER_DEVICE_PER_MINUTE: '1000' });
    proxy = await startFaultProxy(api.url);
  });
  after(async () => {
    await proxy?.close();
    await api?.[Symbol.asyncDispose]();
    await edge?.[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
  });

  const mac = () => macs[0]!;
  const syncer = (env: Record<string, string> = {}, url = proxy.url) =>
    testSyncer(edge, url, mac(), tokens.get(mac())!, env);
  const touch = () => central.pool.query(`UPDATE devices SET updated_at = now() WHERE mac = $1`, [mac()]);

  it('loads a correctly signed manifest', async () => {
    const result = await syncer().run('cli');
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.deepEqual(await edgeRows(edge.pool), await centralScopeRows(central.pool, mac()));
  });

  const refusals: { name: string; arm: () => void; env?: Record<string, string>; code: string }[] = [
    {
      name: 'an unsigned manifest',
      arm: () => void (proxy.fault = { kind: 'manifest', edit: () => {}, dropSignature: true }),
      code: 'MANIFEST_SIGNATURE_INVALID',
    },
    {
      name: 'a manifest changed after signing',
      arm: () =>
        void (proxy.fault = {
          kind: 'manifest',
          edit: (m) => void (m.expiresAt = '2099-01-01T00:00:00.000Z'),
          resign: false,
        }),
      code: 'MANIFEST_SIGNATURE_INVALID',
    },
    {
      name: 'a manifest signed by a key the edge does not trust',
      arm: () => void (proxy.fault = { kind: 'none' }),
      env: { MANIFEST_PUBLIC_KEYS: generateSigningKeys().publicKey },
      code: 'MANIFEST_SIGNATURE_INVALID',
    },
    {
      name: 'a stalled response',
      // Inside the manifest line (a stall among inline pieces is resumed by /pieces).
      arm: () => void (proxy.fault = { kind: 'stall', afterBytes: 200 }),
      env: { HTTP_STALL_TIMEOUT_SECONDS: '1' },
      code: 'SNAPSHOT_INVALID',
    },
    {
      name: 'a response of the wrong content type',
      arm: () => void (proxy.fault = { kind: 'content-type', value: 'text/html' }),
      code: 'SNAPSHOT_INVALID',
    },
  ];
  for (const r of refusals) {
    it(`refuses ${r.name}, leaving the data as it was`, async () => {
      await touch();
      const before = await edgeRows(edge.pool);
      r.arm();
      try {
        const result = await syncer(r.env).run('cli');
        assert.equal(result.status, 'failed');
        assert.equal(result.error?.code, r.code, result.error?.message);
        assert.deepEqual(await edgeRows(edge.pool), before);
      } finally {
        proxy.fault = { kind: 'none' };
      }
    });
  }

  it('accepts either key during a rotation', async () => {
    const next = generateSigningKeys();
    await using rotated = await startCentral(central, { MANIFEST_SIGNING_KEY: next.privateKey });
    await touch();
    const both = `${TEST_KEYS.publicKey},${next.publicKey}`;
    const result = await syncer({ MANIFEST_PUBLIC_KEYS: both }, rotated.url).run('cli');
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    const oldOnly = await syncer({}, rotated.url).run('cli');
    assert.equal(oldOnly.error?.code, 'MANIFEST_SIGNATURE_INVALID');
  });

  it('waits as long as Retry-After says, then succeeds', async () => {
    await touch();
    proxy.fault = { kind: 'status', status: 429, retryAfter: '1', times: 1 };
    const started = Date.now();
    const result = await syncer({ HTTP_RETRY_ATTEMPTS: '2' }).run('cli');
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.ok(Date.now() - started >= 1000, 'waited at least the second Central asked for');
  });

  it('limits requests per device with 429 and Retry-After, audited, other devices unaffected', async () => {
    await using limited = await startCentral(central, { RATE_LIMIT_PER_DEVICE_PER_MINUTE: '2' });
    const ask = async (m: string) => {
      const res = await requestSnapshot(limited.url, { mac: m }, tokens.get(m));
      return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
    };
    for (let i = 0; i < 2; i++) assert.equal((await ask(mac())).status, 200);
    const refused = await ask(mac());
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    assert.equal(
      (JSON.parse(refused.body.toString()) as { error: { code: string } }).error.code,
      'RATE_LIMITED',
    );
    assert.equal((await ask(macs[1]!)).status, 200);
    await waitFor(
      async () =>
        (
          await central.pool.query(
            "SELECT status, error_code FROM sync_requests WHERE error_code = 'RATE_LIMITED'",
          )
        ).rows,
      (rows) => rows.length === 1,
    ).then((rows) => assert.deepEqual(rows, [{ status: 'rate_limited', error_code: 'RATE_LIMITED' }]));
  });

  it('limits all devices together with an overall budget', async () => {
    await using limited = await startCentral(central, { RATE_LIMIT_GLOBAL_PER_MINUTE: '3' });
    const statuses = [];
    for (const m of macs.slice(0, 5)) {
      const res = await requestSnapshot(limited.url, { mac: m }, tokens.get(m));
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
  });

  it('sheds load with 503 and Retry-After when too many snapshots are being sent', async () => {
    await using small = await startCentral(central, {
      MAX_CONCURRENT_SNAPSHOTS: '1',
      MAX_CONCURRENT_ANSWERS: '1',
      SNAPSHOT_QUEUE_WAIT_MS: '300',
    });
    await using held = await holdSnapshot(small.url);
    const shed = await requestSnapshot(small.url, { mac: macs[1] }, tokens.get(macs[1]!));
    assert.equal(shed.status, 503);
    assert.ok(Number(shed.headers.get('retry-after')) > 0);
    assert.equal(((await shed.json()) as { error: { code: string } }).error.code, 'OVERLOADED');
    assert.equal(await held.finish(), 200, 'the held answer was served once its read could go on');
  });

  it('lets a request wait briefly for a slot before shedding it', async () => {
    await using small = await startCentral(central, {
      MAX_CONCURRENT_SNAPSHOTS: '1',
      MAX_CONCURRENT_ANSWERS: '1',
      SNAPSHOT_QUEUE_WAIT_MS: '10000',
    });
    await using held = await holdSnapshot(small.url);
    const started = Date.now();
    const queued = requestSnapshot(small.url, { mac: macs[1] }, tokens.get(macs[1]!));
    await new Promise((r) => setTimeout(r, 300));
    held.response.destroy(); // the slot comes free: the waiting request takes it
    await held.unlock();
    const res = await queued;
    assert.equal(res.status, 200);
    assert.ok(Date.now() - started >= 300, 'it waited for the slot');
    await res.arrayBuffer();
  });

  it('audits a device that goes away before its answer is sent as aborted, not as an error, and frees its slot', async () => {
    await using small = await startCentral(central, {
      MAX_CONCURRENT_SNAPSHOTS: '1',
      MAX_CONCURRENT_ANSWERS: '1',
      SNAPSHOT_QUEUE_WAIT_MS: '10000',
    });
    const before = await central.pool.query<{ id: string }>('SELECT max(id)::text AS id FROM sync_requests');
    await using held = await holdSnapshot(small.url);
    held.response.destroy();
    await held.unlock();
    const rows = await waitFor(
      async () =>
        (
          await central.pool.query(
            `SELECT status, reason, error_code FROM sync_requests
              WHERE id > $1 AND mac = $2`,
            [before.rows[0]!.id ?? 0, mac()],
          )
        ).rows,
      (r) => r.length === 1 && r[0].status !== 'started',
    );
    assert.deepEqual(rows, [
      { status: 'aborted', reason: 'client went away before the snapshot was sent', error_code: null },
    ]);
    const next = await requestSnapshot(small.url, { mac: macs[1] }, tokens.get(macs[1]!));
    assert.equal(next.status, 200, 'the slot came back');
    await next.arrayBuffer();
  });

  /**
   * A request for mac() that holds its answer slot and its session: its digest pass waits on
   * a lock on `users` until `unlock` (or `finish`, which also reads its answer to the end).
   * A paused reader did this before, but loopback's socket buffers took a whole answer of
   * this size on a slow CI machine, and the slot came free at once.
   */
  async function holdSnapshot(url: string) {
    const locker = await central.pool.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE users IN ACCESS EXCLUSIVE MODE');
    let unlocked = false;
    const unlock = async () => {
      if (unlocked) return;
      unlocked = true;
      await locker.query('COMMIT');
      locker.release();
    };
    let response!: ReturnType<typeof request>;
    const answer = new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(`${url}/api/device-sync/request`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${tokens.get(mac())}`,
          'accept-encoding': 'identity',
        },
      });
      req.on('response', resolve);
      req.on('error', reject);
      req.end(JSON.stringify({ mac: mac() }));
      response = req;
    });
    answer.catch(() => undefined); // a destroyed request rejects; the tests that do so await nothing of it
    await waitFor(
      async () =>
        (
          await central.pool.query(
            `SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'`,
          )
        ).rows[0].n as number,
      (n) => n === 1,
    );
    return {
      get response() {
        return response;
      },
      unlock,
      async finish(): Promise<number | undefined> {
        await unlock();
        const res = await answer;
        for await (const _ of res);
        return res.statusCode;
      },
      async [Symbol.asyncDispose]() {
        response.destroy();
        await unlock();
      },
    };
  }

  it('opens the admin API to the admin token only, never to a device credential', async () => {
    const adminToken = `admin-${'k'.repeat(32)}`;
    await using withAdmin = await startCentral(central, { ADMIN_TOKEN: adminToken });
    const get = (base: string, path: string, bearer?: string) =>
      fetch(base + path, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });
    const code = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;
    assert.equal(await code(await get(withAdmin.url, '/api/admin/requests/summary')), 'UNAUTHENTICATED');
    const device = await get(withAdmin.url, '/api/admin/requests/summary', tokens.get(mac()));
    assert.equal(device.status, 401);
    const summary = await get(withAdmin.url, '/api/admin/requests/summary?hours=1', adminToken);
    assert.equal(summary.status, 200);
    const body = (await summary.json()) as { byStatus: Record<string, number> };
    assert.ok((body.byStatus.served ?? 0) >= 1, JSON.stringify(body));
    const activity = await get(withAdmin.url, `/api/admin/devices/${mac().toUpperCase()}`, adminToken);
    const detail = (await activity.json()) as { mac: string; requests: unknown[]; acks: unknown[] };
    assert.equal(detail.mac, mac());
    assert.ok(detail.requests.length > 0 && detail.acks.length > 0);
    assert.equal(
      (await get(api.url, '/api/admin/requests/summary', adminToken)).status,
      401,
      'closed without ADMIN_TOKEN',
    );
  });

  it('stops accepting a rotated credential at once, though verified credentials are remembered', async () => {
    const device = macs[2]!;
    const old = tokens.get(device)!;
    const ask = async (token: string) => {
      const res = await requestSnapshot(api.url, { mac: device }, token);
      await res.arrayBuffer();
      return res.status;
    };
    const checks = async () => {
      const text = await (await fetch(`${api.url}/metrics`)).text();
      const count = (source: string) =>
        Number(
          new RegExp(`^dbupdate_central_credential_checks_total\\{source="${source}"\\} (\\d+)`, 'm').exec(
            text,
          )?.[1] ?? 0,
        );
      return { cache: count('cache'), computed: count('computed') };
    };
    assert.equal(await ask(old), 200);
    const first = await checks();
    assert.equal(await ask(old), 200);
    assert.deepEqual(
      await checks(),
      { cache: first.cache + 1, computed: first.computed },
      'the second came from the cache',
    );
    const rotated = (await enrollDevice(central.pool, device)).secret;
    tokens.set(device, rotated);
    assert.equal(await ask(old), 401, 'the old credential is refused right after rotation');
    assert.equal(await ask(rotated), 200);
  });

  it('serves a lab Central in MAC-only mode without credentials', async () => {
    await using lab = await startCentral(central, { AUTH_MODE: 'mac-only' });
    await touch();
    const result = await testSyncer(edge, lab.url, mac(), '', { AUTH_MODE: 'mac-only' }).run('cli');
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.equal(result.ack, 'sent');
  });
});
