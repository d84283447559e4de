/**
 * Data leaves devices that must not hold it (issue 36, part 6; docs/releases.md): a signed
 * wipe after `devices disable --wipe` (CLI) or `revoke --wipe` (admin API) empties the edge's
 * tables in one transaction with a ledger row and a NOTIFY, even with the credential revoked;
 * the same wipe unsigned, or recorded and played again, is refused and changes nothing; enable
 * gives the data back; the local data lifetime empties data no sync confirmed for too long.
 * Each failed on the code before: a disabled or revoked device kept its data for ever.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { DATA_CHANGED_CHANNEL } from '../src/edge/repo/news.ts';
import { SNAPSHOT_MEDIA_TYPE } from '../src/contract/wire.ts';
import { seedEnrolledDevices, startCentral, type RunningCentral } from './helpers/central.ts';
import { dbupdate } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { centralScopeRows, edgeRows, testSyncer } from './helpers/edge.ts';

const ADMIN = 'wipe-admin-token-0123456789abcdef';

describe('wipe', () => {
  let central: TestDatabase;
  let api: RunningCentral;
  let macs: string[];
  let tokens: Map<string, string>;
  const edges = new Map<string, TestDatabase>();
  let fake: Server | undefined;
  let listener: pg.Client;
  const notices: Record<string, unknown>[] = [];

  before(async () => {
    central = await createTestDatabase('central');
    ({ macs, tokens } = await seedEnrolledDevices(central, {
      companies: 1,
      locationsPerCompany: 1,
      usersPerCompany: 40,
      devicesPerLocation: 3,
    }));
    api = await startCentral(central, { ADMIN_TOKEN: ADMIN, RATE_LIMIT_PER_DEVICE_PER_MINUTE: '1000' });
    for (const mac of macs) {
      const db = await createTestDatabase('edge');
      edges.set(mac, db);
      assert.equal((await testSyncer(db, api.url, mac, tokens.get(mac)!).run('cli')).status, 'success');
    }
    listener = new pg.Client({ connectionString: edges.get(macs[0]!)!.url });
    await listener.connect();
    listener.on('notification', (n) => notices.push(JSON.parse(n.payload!) as Record<string, unknown>));
    await listener.query(`LISTEN ${DATA_CHANGED_CHANNEL}`);
  });
  after(async () => {
    await listener?.end();
    fake?.close();
    await api?.[Symbol.asyncDispose]();
    for (const db of edges.values()) await db[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
  });

  const sync = (mac: string, url = api.url, env: Record<string, string> = {}) =>
    testSyncer(edges.get(mac)!, url, mac, tokens.get(mac)!, env).run('cli');
  const rowCount = async (mac: string) =>
    Object.values(await edgeRows(edges.get(mac)!.pool)).reduce((n, rows) => n + rows.length, 0);
  const lastLedger = async (mac: string) =>
    (
      await edges.get(mac)!.pool.query<{
        status: string;
        trigger: string;
        wiped: boolean;
      }>('SELECT status, trigger, wiped FROM edge_sync_log ORDER BY id DESC LIMIT 1')
    ).rows[0]!;

  /** A signed wipe answer as Central sends it, to one request with its own nonce. */
  async function recordedWipe(mac: string): Promise<string> {
    const res = await fetch(`${api.url}/api/device-sync/request`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'accept-encoding': 'identity',
        authorization: `Bearer ${tokens.get(mac)}`,
      },
      body: JSON.stringify({ mac, pieces: true, nonce: 'ab'.repeat(16) }),
    });
    assert.equal(res.status, 200);
    return res.text();
  }

  /** A Central on the path that answers every request with `body`. */
  async function serving(body: string): Promise<string> {
    fake?.close();
    fake = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': SNAPSHOT_MEDIA_TYPE }).end(body));
    });
    await new Promise<void>((resolve) => fake!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
  }

  it('refuses a wipe that is unsigned or played again, and changes nothing', async () => {
    const mac = macs[0]!;
    const held = await edgeRows(edges.get(mac)!.pool);
    const run = await dbupdate(['central', 'devices', 'disable', '--mac', mac, '--wipe'], {
      CENTRAL_DATABASE_URL: central.url,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /disabled; it empties its tables at its next request/);
    const recorded = await recordedWipe(mac);
    const [first, ...rest] = recorded.split('\n');
    const manifest = JSON.parse(first!) as { manifest: { wipe?: unknown }; signature?: unknown };
    assert.ok(manifest.manifest.wipe, 'Central answers the disabled device with a wipe');

    const replayed = await sync(mac, await serving(recorded));
    assert.equal(replayed.error?.code, 'MANIFEST_STALE', JSON.stringify(replayed));
    delete manifest.signature;
    const unsigned = await sync(mac, await serving([JSON.stringify(manifest), ...rest].join('\n')));
    assert.equal(unsigned.error?.code, 'MANIFEST_SIGNATURE_INVALID', JSON.stringify(unsigned));
    assert.deepEqual(await edgeRows(edges.get(mac)!.pool), held, 'nothing was emptied');
  });

  it('empties a disabled device in one transaction, with a ledger row, a NOTIFY and an ack', async () => {
    const mac = macs[0]!;
    notices.length = 0;
    const result = await sync(mac);
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.equal(result.wiped, true);
    assert.equal(result.ack, 'sent');
    assert.equal(await rowCount(mac), 0);
    assert.deepEqual(await lastLedger(mac), { status: 'success', trigger: 'cli', wiped: true });
    await waitFor(() => notices.length > 0);
    assert.equal(notices[0]!.wiped, true);
    const { rows } = await central.pool.query<{ result: string }>(
      `SELECT a.result FROM device_wipes w JOIN sync_acknowledgements a ON a.manifest_id = w.last_manifest_id`,
    );
    assert.deepEqual(rows, [{ result: 'Success' }], 'Central knows the wipe was done');
    const list = await dbupdate(['central', 'devices', 'list', '--json'], {
      CENTRAL_DATABASE_URL: central.url,
    });
    const listed = list.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { mac: string; release: string });
    assert.equal(listed.find((d) => d.mac === mac)!.release, 'wiped');
    // The other devices keep their data.
    assert.equal((await sync(macs[1]!)).status, 'unchanged');
    assert.ok((await rowCount(macs[1]!)) > 40);
  });

  it('reaches a device whose credential was revoked with it, through the admin API', async () => {
    const mac = macs[1]!;
    const res = await fetch(`${api.url}/api/admin/devices/${mac}/revoke?wipe=true`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'dbupdate-actor': 'ops-bob' },
    });
    assert.deepEqual(((await res.json()) as { wipe?: boolean }).wipe, true);
    const result = await sync(mac);
    assert.equal(result.wiped, true, JSON.stringify(result));
    assert.equal(result.ack, 'sent', 'the ack of a wipe is taken with the revoked credential');
    assert.equal(await rowCount(mac), 0);
    // Revoked all the same: nothing else is answered.
    await central.pool.query('DELETE FROM device_wipes');
    assert.equal((await sync(mac)).error?.code, 'CENTRAL_REFUSED');
  });

  it('gives the data back when the device is enabled again', async () => {
    const mac = macs[0]!;
    const run = await dbupdate(['central', 'devices', 'enable', '--mac', mac], {
      CENTRAL_DATABASE_URL: central.url,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await sync(mac)).status, 'success');
    assert.deepEqual(await edgeRows(edges.get(mac)!.pool), await centralScopeRows(central.pool, mac));
  });

  it('empties data no sync confirmed for DATA_LIFETIME_DAYS, once, and reloads when Central answers', async () => {
    const mac = macs[2]!;
    const db = edges.get(mac)!;
    const unreachable = { DATA_LIFETIME_DAYS: '1' };
    const closed = await serving('');
    fake!.close();
    assert.equal((await sync(mac, closed, unreachable)).error?.code, 'CENTRAL_UNREACHABLE');
    assert.ok((await rowCount(mac)) > 0, 'a day has not passed');
    // Central's own time of the last manifest, two days back (the device's clock is not trusted).
    await db.pool.query(
      `UPDATE edge_sync_state SET value = to_char(now() - interval '2 days', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        WHERE key = 'last_generated_at'`,
    );
    assert.equal((await sync(mac, closed, unreachable)).error?.code, 'CENTRAL_UNREACHABLE');
    assert.ok((await rowCount(mac)) > 0, 'two failures are not enough: a clock that jumped wipes nothing');
    assert.equal((await sync(mac, closed, unreachable)).error?.code, 'CENTRAL_UNREACHABLE');
    assert.equal(await rowCount(mac), 0);
    assert.deepEqual(await lastLedger(mac), { status: 'success', trigger: 'lifetime', wiped: true });
    await sync(mac, closed, unreachable);
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM edge_sync_log WHERE trigger = 'lifetime'`,
    );
    assert.equal(rows[0]!.n, 1, 'emptied once');
    assert.equal((await sync(mac, api.url, unreachable)).status, 'success');
    assert.deepEqual(await edgeRows(db.pool), await centralScopeRows(central.pool, mac));
  });
});

async function waitFor(done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(done());
}
