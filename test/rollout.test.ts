/**
 * Canaries, waves and windows (issue 36 parts 4 and 5; docs/releases.md) through 20 real edges
 * and a real Central: a change reaches the 3 canaries first and the 17 others only after the
 * canaries acked, in waves; a rollout whose canary fails pauses itself, naming the cause; a
 * bulk change waits for a cohort's sync window while an edit does not. Each failed on the code
 * before: every device took every change at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { bucketOf } from '../src/central/release/waves.ts';
import type { SyncResult } from '../src/edge/model.ts';
import { seedEnrolledDevices, startCentral, type RunningCentral } from './helpers/central.ts';
import { dbupdate } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { centralScopeRows, edgeRows, testSyncer } from './helpers/edge.ts';

const ADMIN = 'rollout-admin-token-0123456789abcdef';
const WAVE_SECONDS = 3;

describe('staged rollout', () => {
  let central: TestDatabase;
  let api: RunningCentral;
  let macs: string[];
  let tokens: Map<string, string>;
  const edges = new Map<string, TestDatabase>();
  let canaries: string[];
  let others: string[];
  const idOf = new Map<string, string>();

  before(async () => {
    central = await createTestDatabase('central');
    ({ macs, tokens } = await seedEnrolledDevices(central, {
      companies: 1,
      locationsPerCompany: 2,
      usersPerCompany: 60,
      devicesPerLocation: 10,
    }));
    const { rows } = await central.pool.query<{ id: string; mac: string }>(
      'SELECT id, mac::text FROM devices',
    );
    for (const r of rows) idOf.set(r.mac, r.id);
    canaries = macs.slice(0, 3);
    others = macs.slice(3);
    api = await startCentral(central, {
      ADMIN_TOKEN: ADMIN,
      RATE_LIMIT_PER_DEVICE_PER_MINUTE: '1000',
      RELEASE_REFRESH_SECONDS: '1',
      RELEASE_WAVE_PERCENT: '50',
      RELEASE_WAVE_SECONDS: String(WAVE_SECONDS),
      RELEASE_CANARY_ACKS: '3',
      RELEASE_WINDOWS: `night=${hhmm(6)}-${hhmm(7)},day=${hhmm(-1)}-${hhmm(1)}`,
    });
    for (const mac of macs) {
      const db = await createTestDatabase('edge');
      edges.set(mac, db);
      assert.equal((await sync(mac)).status, 'success');
    }
    for (const mac of canaries) {
      const res = await fetch(`${api.url}/api/admin/devices/${mac}/cohort`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ cohort: 'canary' }),
      });
      assert.equal(res.status, 200);
    }
  });
  after(async () => {
    await api?.[Symbol.asyncDispose]();
    for (const db of edges.values()) await db[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
  });

  const sync = (mac: string): Promise<SyncResult> =>
    testSyncer(edges.get(mac)!, api.url, mac, tokens.get(mac)!).run('cli');
  const release = async () =>
    (await (
      await fetch(`${api.url}/api/admin/release`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).json()) as {
      paused: boolean;
      pausedBy: string | null;
      pauseReason: string | null;
      rollout: {
        startedAt: string | null;
        canariesOkAt: string | null;
        endedAt: string | null;
        wavesOpen: number | null;
      };
      events: { action: string }[];
    };
  const until = async (done: () => Promise<boolean>, what: string) => {
    for (let i = 0; i < 100; i++) {
      if (await done()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`never: ${what}`);
  };
  const inScope = async (mac: string) =>
    JSON.stringify(await edgeRows(edges.get(mac)!.pool)) ===
    JSON.stringify(await centralScopeRows(central.pool, mac));
  const rename = () => central.pool.query(`UPDATE users SET display_name = display_name || '+'`);

  it('reaches the canaries first, then the others in waves, and ends', async () => {
    await rename();
    const held = await edgeRows(edges.get(others[0]!)!.pool);
    for (const mac of others) {
      const r = await sync(mac);
      assert.equal(r.held?.reason, 'wave', `${mac}: ${JSON.stringify(r)}`);
    }
    assert.ok(
      JSON.stringify(await edgeRows(edges.get(others[0]!)!.pool)) === JSON.stringify(held),
      'nothing before the canaries',
    );
    assert.ok((await release()).rollout.startedAt);
    for (const mac of canaries) assert.equal((await sync(mac)).status, 'success');
    await until(async () => (await release()).rollout.canariesOkAt !== null, 'canaries acked');

    // Wave 1: the devices whose bucket is under 50; the others wait for wave 2.
    const first = others.filter((mac) => bucketOf(idOf.get(mac)!) < 50);
    assert.ok(first.length > 0 && first.length < others.length, `${first.length} of ${others.length}`);
    for (const mac of others) {
      const r = await sync(mac);
      if (first.includes(mac)) assert.equal(r.status, 'success', mac);
      else if ((await release()).rollout.wavesOpen === 1) assert.equal(r.held?.reason, 'wave', mac);
    }
    await new Promise((r) => setTimeout(r, WAVE_SECONDS * 1000));
    for (const mac of others) {
      assert.notEqual((await sync(mac)).status, 'failed');
      assert.ok(await inScope(mac), `${mac} holds its scope`);
    }
    await until(async () => (await release()).rollout.endedAt !== null, 'rollout ended');
    const actions = (await release()).events.map((e) => e.action).reverse();
    assert.deepEqual(actions.slice(-3), ['rollout_start', 'canaries_ok', 'rollout_end']);
  });

  it('pauses itself when a canary fails, naming the cause, and holds everyone', async () => {
    const canary = edges.get(canaries[0]!)!;
    // A local rule the new names break: the canary's load fails (a check holds in every load mode).
    await canary.pool.query(
      `ALTER TABLE users ADD CONSTRAINT boom CHECK (display_name NOT LIKE '%++') NOT VALID`,
    );
    await rename();
    const failed = await sync(canaries[0]!);
    assert.equal(failed.error?.code, 'LOAD_FAILED');
    assert.equal(failed.ack, 'sent');
    await until(async () => (await release()).paused, 'paused by the rollout');
    const state = await release();
    assert.equal(state.pausedBy, 'central:rollout');
    assert.match(state.pauseReason!, /1 devices failed \(LOAD_FAILED ×1\)/);
    assert.equal((await sync(canaries[1]!)).held?.reason, 'paused');
    const metrics = await (await fetch(`${api.url}/metrics`)).text();
    assert.match(metrics, /^dbupdate_central_release\{state="rollout_paused"\} 1$/m);

    await canary.pool.query('ALTER TABLE users DROP CONSTRAINT boom');
    const resumed = await dbupdate(['central', 'release', 'resume'], { CENTRAL_DATABASE_URL: central.url });
    assert.equal(resumed.code, 0, resumed.stderr);
    await until(async () => !(await release()).paused, 'resumed');
    assert.equal((await sync(canaries[0]!)).status, 'success');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await release()).paused, false, 'failures count afresh from the resume');
  });

  it('holds a bulk change until the cohort’s window opens, not an edit', async () => {
    // Let the running rollout reach everyone first.
    await until(async () => {
      for (const mac of macs) await sync(mac);
      return (await release()).rollout.endedAt !== null;
    }, 'rollout ended');
    const [night, day] = [others[0]!, others[1]!];
    for (const [mac, cohort] of [
      [night, 'night'],
      [day, 'day'],
    ] as const) {
      const run = await dbupdate(['central', 'devices', 'cohort', '--mac', mac, '--cohort', cohort], {
        CENTRAL_DATABASE_URL: central.url,
      });
      assert.equal(run.code, 0, run.stderr);
    }
    // An edit: sent at once, window or not (after its rollout).
    await rename();
    await until(async () => {
      for (const mac of macs) await sync(mac);
      return (await release()).rollout.endedAt !== null;
    }, 'the edit rolled out');
    // The last wave may open between a device's held sync and the check: its next sync takes it.
    await sync(night);
    assert.ok(await inScope(night));
    // A bulk change: 120 new memberships in their location reach the day cohort, not the night one.
    const added = await central.pool.query(
      `INSERT INTO group_users (group_id, user_id)
       SELECT lg.group_id, u.id
         FROM location_groups lg JOIN devices d ON d.location_id = lg.location_id AND d.mac = $1::macaddr
        CROSS JOIN users u
        WHERE NOT EXISTS (SELECT 1 FROM group_users x WHERE x.group_id = lg.group_id AND x.user_id = u.id)
        LIMIT 120`,
      [night],
    );
    assert.ok((added.rowCount ?? 0) >= 100, `${added.rowCount} memberships added`);
    await until(async () => {
      for (const mac of macs.filter((m) => m !== night)) await sync(mac);
      return (await release()).rollout.endedAt !== null;
    }, 'the bulk change rolled out');
    await sync(day);
    const held = await sync(night);
    assert.equal(held.held?.reason, 'window', JSON.stringify(held));
    assert.equal(new Date(held.held!.since).getTime() <= Date.now(), true);
    assert.ok(await inScope(day));
    assert.ok(!(await inScope(night)), 'the night cohort keeps what it holds');
  });
});

/** The time of day `hours` from now, UTC, as HH:MM. */
function hhmm(hours: number): string {
  const t = new Date(Date.now() + hours * 3_600_000);
  return `${String(t.getUTCHours()).padStart(2, '0')}:${String(t.getUTCMinutes()).padStart(2, '0')}`;
}
