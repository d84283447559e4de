/**
 * The device lifecycle through the real CLI and the real admin API, against a Central on a
 * real port: bulk enrolment from a CSV (idempotent, all or nothing, bad lines by number),
 * disable and enable, revocation that holds at once although the credential verified a
 * moment before, rotation with an overlap, the paged fleet list, and who did what.
 */
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { seedCentral, DEFAULT_SHAPE } from '../src/central/fleet/seed.ts';
import { SCHEMA_VERSION_HEADER, SOFTWARE_VERSION_HEADER } from '../src/contract/wire.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { dbupdate } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

const ADMIN = 'admin-token-for-lifecycle-tests';

describe('device lifecycle', () => {
  let db: TestDatabase;
  let central: RunningCentral;
  let dir: string;
  let locations: string[];
  let seededMacs: string[];
  const cli = (...args: string[]) => dbupdate(['central', ...args], { CENTRAL_DATABASE_URL: db.url });

  /** The HTTP status of one sync request (the body is read and dropped). */
  async function syncStatus(mac: string, token: string, headers: Record<string, string> = {}) {
    const res = await fetch(`${central.url}/api/device-sync/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
      body: JSON.stringify({ mac }),
    });
    await res.arrayBuffer();
    return res.status;
  }

  async function admin(path: string, init: RequestInit = {}, token = ADMIN) {
    const res = await fetch(`${central.url}${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${token}`,
        'dbupdate-actor': 'ops-alice',
        ...(init.body ? { 'content-type': 'application/json' } : {}),
      },
    });
    return {
      status: res.status,
      body: (await res.json()) as Record<string, unknown> & { error?: { code: string; message: string } },
    };
  }

  const deviceCount = async () =>
    (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM devices')).rows[0]!.n;

  before(async () => {
    db = await createTestDatabase('central');
    const seeded = await seedCentral(
      db.pool,
      { ...DEFAULT_SHAPE, companies: 1, locationsPerCompany: 3, usersPerCompany: 20, devicesPerLocation: 90 },
      { reset: false },
    );
    seededMacs = seeded.devices.map((d) => d.mac);
    locations = (await db.pool.query<{ id: string }>('SELECT id FROM locations ORDER BY id')).rows.map(
      (r) => r.id,
    );
    central = await startCentral(db, { ADMIN_TOKEN: ADMIN });
    dir = await mkdtemp(join(tmpdir(), 'dbupdate-lifecycle-'));
  });
  after(async () => {
    await central?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  it('enrols from a CSV: creates the new devices, prints one credential each, and a second run changes nothing', async () => {
    const csv = join(dir, 'batch.csv');
    await writeFile(
      csv,
      [
        'mac,location_id,name',
        `02:aa:00:00:00:01,${locations[0]},"Dock 1, north"`,
        `02-AA-00-00-00-02,${locations[1]},Dock 2`,
        `${seededMacs[0]},,`,
      ].join('\n'),
    );
    const before = await deviceCount();
    const first = await cli('enroll', '--csv', csv);
    assert.equal(first.code, 0, first.stderr);
    const lines = first.stdout.trim().split('\n');
    assert.equal(lines[0], 'mac,device_id,credential');
    const issued = new Map(lines.slice(1).map((l) => [l.split(',')[0]!, l.split(',')[2]!]));
    assert.deepEqual([...issued.keys()], ['02:aa:00:00:00:01', '02:aa:00:00:00:02', seededMacs[0]]);
    assert.equal(await deviceCount(), before + 2);
    const named = await db.pool.query<{ name: string }>(
      `SELECT name FROM devices WHERE mac = '02:aa:00:00:00:01'`,
    );
    assert.equal(named.rows[0]!.name, 'Dock 1, north');
    for (const [mac, token] of issued) assert.equal(await syncStatus(mac, token), 200, mac);

    const again = await cli('enroll', '--csv', csv);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout.trim(), 'mac,device_id,credential');
    assert.match(again.stderr, /0 enrolled \(0 created\), 3 already enrolled and kept/);
    assert.equal(await deviceCount(), before + 2);
    for (const [mac, token] of issued) assert.equal(await syncStatus(mac, token), 200, `${mac} still works`);
  });

  it('refuses a CSV with bad lines, names each by line number, and changes nothing', async () => {
    const csv = join(dir, 'bad.csv');
    await writeFile(
      csv,
      [
        'mac,location_id,name',
        `02:bb:00:00:00:01,${locations[0]},ok`,
        'not-a-mac,,',
        `02:bb:00:00:00:01,${locations[0]},twice`,
        '02:bb:00:00:00:04,,no location',
        `02:bb:00:00:00:05,00000000-0000-4000-8000-000000000000,nowhere`,
      ].join('\n'),
    );
    const before = await deviceCount();
    const run = await cli('enroll', '--csv', csv);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /INVALID_INPUT: nothing was enrolled/);
    assert.match(run.stderr, /line 3: not a MAC/);
    assert.match(run.stderr, /line 4: MAC 02:bb:00:00:00:01 again \(first at line 2\)/);
    // What only the database can judge is reported in the same run, not after a second try.
    assert.match(run.stderr, /line 5: no device has MAC 02:bb:00:00:00:04; give its location/);
    assert.match(run.stderr, /line 6: no location 00000000-/);
    assert.equal(run.stdout, '');
    // A file whose every line reads well but names what is not there.
    await writeFile(
      csv,
      [
        'mac,location_id',
        '02:bb:00:00:00:04,',
        `02:bb:00:00:00:05,${'0'.repeat(8)}-0000-4000-8000-000000000000`,
      ].join('\n'),
    );
    const second = await cli('enroll', '--csv', csv);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /DEVICE_NOT_FOUND: nothing was enrolled; 2 problem/);
    assert.match(second.stderr, /line 2: no device has MAC 02:bb:00:00:00:04; give its location/);
    assert.match(second.stderr, /line 3: no location 00000000-/);
    assert.equal(await deviceCount(), before);
    const creds = await db.pool.query(`SELECT 1 FROM devices WHERE mac::text LIKE '02:bb:%'`);
    assert.equal(creds.rowCount, 0);
  });

  it('revokes a credential at once, though it verified (and was cached) a moment before', async () => {
    const mac = seededMacs[1]!;
    const enrolled = await cli('enroll', '--mac', mac);
    const token = enrolled.stdout.trim();
    assert.equal(await syncStatus(mac, token), 200);
    assert.equal(await syncStatus(mac, token), 200);
    const revoke = await cli('devices', 'revoke', '--mac', mac);
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.match(revoke.stdout, /credential revoked/);
    assert.equal(await syncStatus(mac, token), 401);
    const listed = await cli('devices', 'list', '--json');
    const row = listed.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { mac: string; credential: string })
      .find((d) => d.mac === mac);
    assert.equal(row?.credential, 'revoked');
    // Enrolling again gives a working credential; the revoked one stays dead.
    const fresh = (await cli('enroll', '--mac', mac)).stdout.trim();
    assert.equal(await syncStatus(mac, fresh), 200);
    assert.equal(await syncStatus(mac, token), 401);
  });

  it('disables and enables a device, and records who did each', async () => {
    const mac = seededMacs[2]!;
    const token = (await cli('enroll', '--mac', mac)).stdout.trim();
    assert.equal((await cli('devices', 'disable', '--mac', mac)).code, 0);
    assert.equal(await syncStatus(mac, token), 403);
    const twice = await cli('devices', 'disable', '--mac', mac);
    assert.match(twice.stdout, /already disabled/);
    assert.equal((await cli('devices', 'enable', '--mac', mac)).code, 0);
    assert.equal(await syncStatus(mac, token), 200);
    const events = await admin(`/api/admin/devices/${mac}/events`);
    const actions = (events.body.events as { action: string; actor: string }[]).map((e) => e.action);
    assert.deepEqual(actions, ['enable', 'disable', 'disable', 'enroll']);
    for (const e of events.body.events as { actor: string }[]) assert.match(e.actor, /^cli:[^@]+@/);
  });

  it('re-keys with an overlap: both credentials work, and a warning says so', async () => {
    const mac = seededMacs[3]!;
    const old = (await cli('enroll', '--mac', mac)).stdout.trim();
    const rotated = await cli('enroll', '--mac', mac, '--overlap-seconds', '600');
    assert.match(rotated.stderr, /had a working credential; it keeps working for 600 s/);
    const fresh = rotated.stdout.trim();
    assert.equal(await syncStatus(mac, old), 200);
    assert.equal(await syncStatus(mac, fresh), 200);
    const cut = await cli('enroll', '--mac', mac);
    assert.match(cut.stderr, /it stopped working now/);
    assert.equal(await syncStatus(mac, fresh), 401);
    assert.equal(await syncStatus(mac, old), 401);
    assert.equal(await syncStatus(mac, cut.stdout.trim()), 200);
  });

  it('pages the fleet by MAC with a total on every page, over the admin API', async () => {
    const total = await deviceCount();
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 100; page++) {
      const query: string = after ? `&after=${encodeURIComponent(after)}` : '';
      const { status, body } = await admin(`/api/admin/devices?limit=37${query}`);
      assert.equal(status, 200);
      assert.equal(body.total, total);
      seen.push(...(body.devices as { mac: string }[]).map((d) => d.mac));
      after = body.next as string | null;
      if (!after) break;
    }
    assert.equal(seen.length, total);
    assert.deepEqual(seen, [...new Set(seen)].sort());
    // More stale devices than one page holds: the total says how many, `next` goes on.
    const stale = await admin('/api/admin/devices/stale?hours=24');
    assert.equal((stale.body.devices as unknown[]).length, 200);
    assert.ok((stale.body.total as number) > 200, String(stale.body.total));
    assert.ok(stale.body.next);
    // The same count for an alert, without SQL: Central's gauge.
    const metrics = await (await fetch(`${central.url}/metrics`)).text();
    const gauge = /^dbupdate_central_stale_devices\{hours="24"\} (\d+)$/m.exec(metrics)?.[1];
    // The list names devices that never synced too; the gauge (and its alert) counts them apart.
    const never = /^dbupdate_central_devices_by_state\{state="never_synced"\} (\d+)$/m.exec(metrics)?.[1];
    assert.equal(Number(gauge) + Number(never), stale.body.total);
    assert.ok(Number(never) > 200, 'most of these devices never synced');
    assert.match(metrics, new RegExp(`^dbupdate_central_devices\\{enabled="true"\\} ${total}$`, 'm'));
  });

  it('enrols, revokes and reports over the admin API, with the actor from the header', async () => {
    const created = await admin('/api/admin/devices/enroll', {
      method: 'POST',
      body: JSON.stringify({
        devices: [{ mac: '02:cc:00:00:00:01', locationId: locations[2], name: 'api' }],
      }),
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const [entry] = created.body.enrolled as { mac: string; credential: string; created: boolean }[];
    assert.equal(entry!.created, true);
    const reported = { [SCHEMA_VERSION_HEADER]: '1', [SOFTWARE_VERSION_HEADER]: '9.8.7-test' };
    assert.equal(await syncStatus(entry!.mac, entry!.credential, reported), 200);
    const listed = await admin('/api/admin/devices?limit=500');
    const row = (
      listed.body.devices as { mac: string; schemaVersion: number; softwareVersion: string }[]
    ).find((d) => d.mac === entry!.mac);
    assert.deepEqual([row?.schemaVersion, row?.softwareVersion], [1, '9.8.7-test']);

    const revoked = await admin(`/api/admin/devices/${entry!.mac}/revoke`, { method: 'POST' });
    assert.deepEqual([revoked.status, revoked.body.changed], [200, true]);
    assert.equal(await syncStatus(entry!.mac, entry!.credential), 401);
    const events = await admin(`/api/admin/devices/${entry!.mac}/events`);
    const actors = (events.body.events as { actor: string; action: string }[]).map(
      (e) => `${e.action} ${e.actor}`,
    );
    assert.deepEqual(actors, [
      'revoke api:ops-alice@127.0.0.1',
      'enroll api:ops-alice@127.0.0.1',
      'create api:ops-alice@127.0.0.1',
    ]);
  });

  it('refuses an edge on a schema version it does not serve, with a code, audited', async () => {
    const mac = seededMacs[4]!;
    const token = (await cli('enroll', '--mac', mac)).stdout.trim();
    const res = await fetch(`${central.url}/api/device-sync/request`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${token}`,
        [SCHEMA_VERSION_HEADER]: '99',
      },
      body: JSON.stringify({ mac }),
    });
    assert.equal(res.status, 409);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'SCHEMA_VERSION_UNSUPPORTED');
    assert.match(body.error.message, /upgrade Central first/);
    const audit = await db.pool.query<{ status: string; schema_version: number }>(
      'SELECT status, schema_version FROM sync_requests WHERE mac = $1 ORDER BY id DESC LIMIT 1',
      [mac],
    );
    assert.deepEqual(audit.rows[0], { status: 'unsupported_schema', schema_version: 99 });
  });

  it('says whether the admin token is missing or wrong', async () => {
    const wrong = await admin('/api/admin/devices', {}, 'not-the-token');
    assert.equal(wrong.status, 401);
    assert.match(wrong.body.error!.message, /wrong admin token/);
    const res = await fetch(`${central.url}/api/admin/devices`);
    assert.match(
      ((await res.json()) as { error: { message: string } }).error.message,
      /admin token required/,
    );
  });
});
