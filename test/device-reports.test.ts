/**
 * What goes wrong on a device reaches Central (issue 35, finding 4): a failure that never
 * reached a manifest is told with the next request that does; a scheduled verify's drift is
 * told too, and repaired when asked; a device that never synced has a state of its own and is
 * not stale. Each failed on the code before: Central knew nothing of these.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateSigningKeys } from '../src/contract/signing.ts';
import { DATA_MODEL } from '../src/contract/data-model.ts';
import { fleetCounts } from '../src/central/fleet/repo/device-admin.ts';
import { scheduledVerify } from '../src/edge/verify/scheduled.ts';
import { seedEnrolledDevices, startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { centralScopeRows, edgeRows, quietLog, testSyncer } from './helpers/edge.ts';

const ADMIN = 'device-reports-admin-token-0123456789';

describe('device reports at Central', () => {
  let central: TestDatabase;
  let edge: TestDatabase;
  let api: RunningCentral;
  let macs: string[];
  let tokens: Map<string, string>;

  before(async () => {
    central = await createTestDatabase('central');
    edge = await createTestDatabase('edge');
    ({ macs, tokens } = await seedEnrolledDevices(central, {
      companies: 1,
      locationsPerCompany: 1,
      usersPerCompany: 30,
      devicesPerLocation: 2,
    }));
    api = await startCentral(central, { ADMIN_TOKEN: ADMIN, RATE_LIMIT_PER_DEVICE_PER_MINUTE: '1000' });
  });
  after(async () => {
    await api?.[Symbol.asyncDispose]();
    await edge?.[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
  });

  const mac = () => macs[0]!;
  const syncer = (env: Record<string, string> = {}) =>
    testSyncer(edge, api.url, mac(), tokens.get(mac())!, env);
  async function device(which = mac()) {
    const res = await fetch(`${api.url}/api/admin/devices?limit=10`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    const page = (await res.json()) as { devices: Record<string, unknown>[] };
    return page.devices.find((d) => d.mac === which)!;
  }
  const metric = async (name: string) =>
    Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(`${api.url}/metrics`)).text())?.[1]);

  it('has a device that never synced in a state of its own, not stale', async () => {
    assert.equal((await device()).state, 'never synced');
    assert.equal(await metric('dbupdate_central_devices_by_state\\{state="never_synced"\\}'), 2);
    assert.equal(await metric('dbupdate_central_stale_devices\\{hours="24"\\}'), 0, 'no stale alert for it');
  });

  it('tells Central, with its next request, of a failure Central never saw', async () => {
    const refused = await syncer({ MANIFEST_PUBLIC_KEYS: generateSigningKeys().publicKey }).run('cli');
    assert.equal(refused.error?.code, 'MANIFEST_SIGNATURE_INVALID');
    assert.equal((await device()).reportedFailure, null, 'Central cannot know yet');
    const ok = await syncer().run('cli');
    assert.equal(ok.status, 'success', JSON.stringify(ok.error));
    const d = await device();
    assert.match(
      String(d.reportedFailure),
      /^MANIFEST_SIGNATURE_INVALID: manifest signature check failed: signed with key/,
    );
    assert.equal(d.state, 'synced');
    // Sent once: the next request carries no report (the stored one is not touched).
    const { rows: before } = await central.pool.query('SELECT reported_at FROM device_reports');
    assert.equal((await syncer().run('cli')).status, 'unchanged');
    const { rows: afterwards } = await central.pool.query('SELECT reported_at FROM device_reports');
    assert.deepEqual(afterwards, before);
  });

  it('reports drift found by the scheduled verify, and repairs it when asked', async () => {
    await edge.pool.query(
      `UPDATE users SET display_name = 'tampered' WHERE id = (SELECT min(id::text)::uuid FROM users)`,
    );
    const s = syncer();
    const deps = {
      pool: edge.pool,
      syncer: s,
      metrics: s.metrics,
      model: DATA_MODEL,
      log: quietLog,
      repair: false,
    };
    assert.deepEqual(await scheduledVerify(deps), ['users']);
    assert.match(await s.metrics.registry.metrics(), /^dbupdate_edge_drifted_tables 1$/m);
    // Central is unchanged, so the sync loads nothing, but it carries the report.
    assert.equal((await s.run('cli')).status, 'unchanged');
    const d = await device();
    assert.equal(d.state, 'drifted');
    assert.deepEqual(d.driftTables, ['users']);
    // (The gauge reads these counts at most every 30 s: asked directly here.)
    assert.equal((await fleetCounts(central.pool)).drifted, 1);

    assert.deepEqual(await scheduledVerify({ ...deps, repair: true }), ['users']);
    assert.deepEqual(await edgeRows(edge.pool), await centralScopeRows(central.pool, mac()), 'repaired');
    const { rows } = await edge.pool.query<{ trigger: string; status: string; error_code: string | null }>(
      `SELECT trigger, status, error_code FROM edge_sync_log ORDER BY id DESC LIMIT 2`,
    );
    assert.deepEqual(rows, [
      { trigger: 'verify', status: 'success', error_code: null },
      { trigger: 'verify', status: 'failed', error_code: 'LOCAL_DRIFT' },
    ]);
    assert.equal((await s.run('cli')).status, 'unchanged');
    assert.equal((await device()).state, 'synced', 'the repair was reported too');
  });
});
