/**
 * Release control (issue 36, docs/releases.md) through real edges, a real Central on a real
 * port, its admin API and its CLI: a freeze keeps every edge that holds data on it (across a
 * Central restart) while a new edge still gets its first sync; a bulk delete of 80 % of the
 * users is held for the whole fleet until approved; a rejected change stays held until
 * Central's data changes again. Each failed on the code before: every change went at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Syncer } from '../src/edge/sync/run.ts';
import type { Preview } from '../src/central/release/preview.ts';
import { seedEnrolledDevices, startCentral, type RunningCentral } from './helpers/central.ts';
import { dbupdate } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { centralScopeRows, edgeRows, testSyncer } from './helpers/edge.ts';

const ADMIN = 'release-control-admin-token-0123456789';

const ENV = { ADMIN_TOKEN: ADMIN, RATE_LIMIT_PER_DEVICE_PER_MINUTE: '1000', RELEASE_REFRESH_SECONDS: '1' };

describe('release control', () => {
  let central: TestDatabase;
  let api: RunningCentral;
  let macs: string[];
  let tokens: Map<string, string>;
  /** Edges holding data: two devices of one location and one of another. */
  const edges: { db: TestDatabase; mac: string }[] = [];
  const fresh: TestDatabase[] = [];

  before(async () => {
    central = await createTestDatabase('central');
    ({ macs, tokens } = await seedEnrolledDevices(central, {
      companies: 1,
      locationsPerCompany: 2,
      usersPerCompany: 200,
      devicesPerLocation: 3,
    }));
    api = await startCentral(central, ENV);
    // Devices are seeded location by location: 0 and 1 share a location, 3 is in the other.
    for (const mac of [macs[0]!, macs[1]!, macs[3]!])
      edges.push({ db: await createTestDatabase('edge'), mac });
    for (const e of edges) assert.equal((await syncer(e.db, e.mac).run('cli')).status, 'success');
  });
  after(async () => {
    await api?.[Symbol.asyncDispose]();
    for (const db of [...edges.map((e) => e.db), ...fresh]) await db[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
  });

  const syncer = (db: TestDatabase, mac: string): Syncer => testSyncer(db, api.url, mac, tokens.get(mac)!);
  const cli = (...args: string[]) =>
    dbupdate(['central', 'release', ...args], { CENTRAL_DATABASE_URL: central.url });

  async function admin(path: string, body?: Record<string, unknown>) {
    const res = await fetch(`${api.url}${path}`, {
      method: body ? 'POST' : 'GET',
      headers: {
        authorization: `Bearer ${ADMIN}`,
        'dbupdate-actor': 'ops-alice',
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }
  const metric = async (state: string) =>
    Number(
      new RegExp(`^dbupdate_central_release\\{state="${state}"\\} (\\S+)$`, 'm').exec(
        await (await fetch(`${api.url}/metrics`)).text(),
      )?.[1],
    );
  const snapshotAll = () => Promise.all(edges.map((e) => edgeRows(e.db.pool)));
  const inScope = async (e: { db: TestDatabase; mac: string }) =>
    assert.deepEqual(await edgeRows(e.db.pool), await centralScopeRows(central.pool, e.mac));
  /** Waits until Central's gate shows `state` at `value` (it reads the release row every second). */
  async function followed(state: string, value: number) {
    for (let i = 0; i < 100 && (await metric(state)) !== value; i++)
      await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await metric(state), value, `${state} followed the CLI`);
  }

  /** Syncs every edge: each must be told to keep its data, and keep it. */
  async function allHeld(reason: 'paused' | 'guard', before: Record<string, string[]>[]) {
    for (const e of edges) {
      const result = await syncer(e.db, e.mac).run('cli');
      assert.equal(result.status, 'unchanged', JSON.stringify(result.error));
      assert.equal(result.held?.reason, reason);
      assert.equal(result.rowsLoaded, 0);
      const { rows } = await e.db.pool.query<{ held_reason: string }>(
        'SELECT held_reason FROM edge_sync_log ORDER BY id DESC LIMIT 1',
      );
      assert.equal(rows[0]!.held_reason, reason, 'the ledger says why nothing came');
    }
    assert.deepEqual(await snapshotAll(), before, 'every edge kept the data it held');
  }

  it('freezes: edges that hold data keep it across a restart, a new edge gets its first sync, resume lets it go', async () => {
    const paused = await admin('/api/admin/release/pause', { reason: 'import of the new org chart' });
    assert.deepEqual(paused, { status: 200, body: { action: 'pause', changed: true } });
    assert.equal(await metric('paused'), 1);
    const before = await snapshotAll();
    await central.pool.query(`UPDATE users SET display_name = display_name || ' (renamed)'`);
    await allHeld('paused', before);
    const { rows } = await central.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM sync_requests WHERE status = 'held'`,
    );
    assert.equal(rows[0]!.n, 3, 'Central audited three held answers');

    const newcomer = await createTestDatabase('edge');
    fresh.push(newcomer);
    assert.equal((await syncer(newcomer, macs[2]!).run('cli')).status, 'success');
    await inScope({ db: newcomer, mac: macs[2]! });

    await api[Symbol.asyncDispose]();
    api = await startCentral(central, { ...ENV, PORT: new URL(api.url).port });
    await allHeld('paused', before);

    const status = JSON.parse((await cli('status', '--json')).stdout) as Record<string, unknown>;
    assert.equal(status.paused, true);
    assert.equal(status.pauseReason, 'import of the new org chart');
    assert.match(String(status.pausedBy), /^api:ops-alice@127\.0\.0\.1$/);
    assert.equal(status.heldDevices, 3);

    assert.equal((await cli('resume')).code, 0);
    await followed('paused', 0);
    for (const e of edges) {
      assert.equal((await syncer(e.db, e.mac).run('cli')).status, 'success');
      await inScope(e);
    }
    const events = JSON.parse((await cli('status', '--json')).stdout).events as {
      action: string;
      actor: string;
    }[];
    assert.deepEqual(
      events.map((e) => e.action),
      ['resume', 'pause'],
    );
    assert.match(events[0]!.actor, /^cli:/);
  });

  it('holds a bulk delete of 80 % of the users for the whole fleet until approved', async () => {
    assert.deepEqual((await admin('/api/admin/release/approve', {})).body.error, {
      code: 'NOTHING_HELD',
      message: 'nothing to approve: the mass-change guard holds no change (dbupdate central release status)',
    });
    const before = await snapshotAll();
    await removeUsers(0.8);
    await allHeld('guard', before);
    assert.equal(await metric('guard_tripped'), 1);
    const state = (await admin('/api/admin/release')).body;
    assert.equal(state.guard, 'tripped');
    const detail = state.guardDetail as Record<string, unknown>;
    assert.equal(detail.table, 'users');
    assert.ok(Number(detail.removed) > 0.5 * Number(detail.held), JSON.stringify(detail));

    assert.equal((await admin('/api/admin/release/approve', { reason: 'the reorg is real' })).status, 200);
    for (const e of edges) {
      assert.equal((await syncer(e.db, e.mac).run('cli')).status, 'success');
      await inScope(e);
    }
    assert.equal(await metric('guard_tripped'), 0);
  });

  it('keeps a rejected change held until Central’s data changes again', async () => {
    await restoreUsers();
    for (const e of edges) assert.equal((await syncer(e.db, e.mac).run('cli')).status, 'success');
    const before = await snapshotAll();
    await removeUsers(0.8);
    await allHeld('guard', before);
    assert.equal((await cli('reject', '--reason', 'a broken export')).code, 0);
    await followed('guard_tripped', 0);
    await allHeld('guard', before);
    // The fix: the users are back, and the change each edge sees is small again.
    await restoreUsers();
    await central.pool.query(
      `UPDATE users SET display_name = display_name || '.' WHERE id = (SELECT id FROM users ORDER BY id LIMIT 1)`,
    );
    for (const e of edges) {
      const result = await syncer(e.db, e.mac).run('cli');
      assert.equal(result.held, undefined, JSON.stringify(result));
      await inScope(e);
    }
  });

  it('previews what is pending: devices reached, rows added, changed and removed, and bytes', async () => {
    // Every device that holds data: the three edges and the newcomer of the first test.
    const all = [...edges, { db: fresh[0]!, mac: macs[2]! }];
    const rowsOfAll = () => Promise.all(all.map((e) => edgeRows(e.db.pool)));
    for (const e of all) assert.notEqual((await syncer(e.db, e.mac).run('cli')).status, 'failed');
    const before = await rowsOfAll();
    await central.pool.query(
      `DELETE FROM group_users WHERE user_id IN (SELECT id FROM users ORDER BY id LIMIT 5)`,
    );
    await central.pool.query(
      `UPDATE users SET display_name = display_name || '!' WHERE id IN (SELECT id FROM users ORDER BY id DESC LIMIT 3)`,
    );
    const api = (await admin('/api/admin/release/preview')).body as unknown as Preview;
    const cliRun = await cli('preview', '--json');
    assert.equal(cliRun.code, 0, cliRun.stderr);
    const fromCli = JSON.parse(cliRun.stdout) as Preview;
    for (const e of all) assert.notEqual((await syncer(e.db, e.mac).run('cli')).status, 'failed');
    const after = await rowsOfAll();
    // What the edges actually did, table by table.
    for (const table of ['users', 'group_users']) {
      const lost = before.reduce(
        (n, b, i) => n + Math.max(0, b[table]!.length - after[i]![table]!.length),
        0,
      );
      const reached = before.filter(
        (b, i) => JSON.stringify(b[table]) !== JSON.stringify(after[i]![table]),
      ).length;
      for (const p of [api, fromCli]) {
        const t = p.tables.find((x) => x.table === table)!;
        assert.equal(t.rowsRemoved, lost, `${table} removed`);
        assert.ok(t.devices >= reached, `${table}: ${t.devices} devices, ${reached} edges changed`);
      }
    }
    const users = api.tables.find((t) => t.table === 'users')!;
    assert.ok(users.rowsChanged !== null && users.rowsChanged >= 3, JSON.stringify(users));
    assert.ok(users.bytes > 0 && users.bytes <= fromCli.tables.find((t) => t.table === 'users')!.bytes);
    assert.equal(
      fromCli.tables.find((t) => t.table === 'users')!.rowsChanged,
      null,
      'the CLI does not know held pieces',
    );
    assert.equal(api.reached, after.filter((a, i) => JSON.stringify(a) !== JSON.stringify(before[i])).length);
    assert.equal(api.devices, api.reached + api.firstSyncs + (all.length - api.reached));
  });

  /** Deletes that share of the users in scope (their memberships first), keeping them to restore. */
  async function removeUsers(share: number) {
    await central.pool.query(`DROP TABLE IF EXISTS kept_users, kept_members`);
    await central.pool.query(
      `CREATE TABLE kept_users AS SELECT * FROM users ORDER BY id LIMIT (SELECT ceil(count(*) * $1::numeric) FROM users)`,
      [share],
    );
    await central.pool.query(
      `CREATE TABLE kept_members AS SELECT * FROM group_users WHERE user_id IN (SELECT id FROM kept_users)`,
    );
    await central.pool.query(`DELETE FROM group_users WHERE user_id IN (SELECT id FROM kept_users)`);
    await central.pool.query(`DELETE FROM users WHERE id IN (SELECT id FROM kept_users)`);
  }

  async function restoreUsers() {
    await central.pool.query(`INSERT INTO users SELECT * FROM kept_users`);
    await central.pool.query(`INSERT INTO group_users SELECT * FROM kept_members`);
  }
});
