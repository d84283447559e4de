/**
 * No replay, no rollback, no stretched lifetime: a real answer recorded on the path and
 * replayed after newer data was applied is refused; another device's answer is refused;
 * a manifest that expires during a slow load, and a sync past its deadline, commit nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { seedEnrolledDevices, startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { edgeRows, testSyncer } from './helpers/edge.ts';
import { startFaultProxy, type FaultProxy } from './helpers/proxy.ts';

describe('replay and rollback', () => {
  let central: TestDatabase;
  let api: RunningCentral;
  let proxy: FaultProxy;
  let macs: string[];
  let tokens: Map<string, string>;

  before(async () => {
    central = await createTestDatabase('central');
    ({ macs, tokens } = await seedEnrolledDevices(central, {
      companies: 1,
      locationsPerCompany: 1,
      devicesPerLocation: 2,
      usersPerCompany: 300,
    }));
    api = await startCentral(central);
    proxy = await startFaultProxy(api.url);
  });
  after(async () => {
    await proxy.close();
    await api[Symbol.asyncDispose]();
    await central[Symbol.asyncDispose]();
  });

  const ledger = async (edge: TestDatabase) =>
    (
      await edge.pool.query<{ status: string; error_code: string | null; manifest_id: string | null }>(
        'SELECT status, error_code, manifest_id FROM edge_sync_log ORDER BY id DESC LIMIT 1',
      )
    ).rows[0];

  it('refuses an older answer replayed after a newer one was applied', async () => {
    await using edge = await createTestDatabase('edge');
    const mac = macs[0]!;
    const sync = () => testSyncer(edge, proxy.url, mac, tokens.get(mac)!).run('cli');
    assert.equal((await sync()).status, 'success');
    // A user of this device's scope is active; an attacker records an answer saying so…
    const { rows } = await central.pool.query<{ id: string }>(
      `SELECT u.id FROM users u JOIN group_users gu ON gu.user_id = u.id
         JOIN location_groups lg ON lg.group_id = gu.group_id
         JOIN devices d ON d.location_id = lg.location_id
        WHERE d.mac = $1::macaddr AND u.is_active LIMIT 1`,
      [mac],
    );
    const user = rows[0]!.id;
    await central.pool.query(
      `UPDATE users SET display_name = display_name || ' ·', updated_at = now() WHERE id = $1`,
      [user],
    );
    const recording: FaultProxy['fault'] = { kind: 'record' };
    proxy.fault = recording;
    assert.equal((await sync()).status, 'failed', 'the recorded answer was withheld');
    const recorded = (recording as { recorded?: { contentType: string; body: Buffer } }).recorded!;
    assert.ok(recorded.body.length > 1000);
    const oldManifest = (
      JSON.parse(recorded.body.toString().split('\n', 1)[0]!) as { manifest: { manifestId: string } }
    ).manifest.manifestId;

    // …then the user is deactivated, and the edge applies that.
    proxy.fault = { kind: 'none' };
    await central.pool.query('UPDATE users SET is_active = false, updated_at = now() WHERE id = $1', [user]);
    assert.equal((await sync()).status, 'success');
    const applied = await edgeRows(edge.pool);

    // The replay: a genuine, signed, unexpired answer, older than what the edge holds.
    proxy.fault = { kind: 'replay', recorded };
    const replayed = await testSyncer(edge, proxy.url, mac, tokens.get(mac)!, {
      SYNC_JITTER_SECONDS: '0',
    }).run('cli');
    proxy.fault = { kind: 'none' };
    assert.equal(replayed.status, 'failed');
    assert.equal(replayed.error?.code, 'MANIFEST_STALE');
    assert.deepEqual(await edgeRows(edge.pool), applied, 'the edge data stayed as the newer snapshot');
    const active = await edge.pool.query('SELECT is_active FROM users WHERE id = $1', [user]);
    assert.deepEqual(active.rows, [{ is_active: false }]);
    assert.deepEqual(await ledger(edge), {
      status: 'failed',
      error_code: 'MANIFEST_STALE',
      manifest_id: oldManifest,
    });
    const ack = await central.pool.query(
      'SELECT result, error_text FROM sync_acknowledgements WHERE manifest_id = $1',
      [oldManifest],
    );
    assert.equal(ack.rows[0]?.result, 'Failed');
    assert.match(ack.rows[0]?.error_text ?? '', /MANIFEST_STALE/);
  });

  it("refuses another device's answer, before and after the edge knows its own id", async () => {
    const [mine, theirs] = [macs[0]!, macs[1]!];
    for (const knowsItself of [false, true]) {
      await using edge = await createTestDatabase('edge');
      if (knowsItself) {
        proxy.fault = { kind: 'none' };
        assert.equal(
          (await testSyncer(edge, proxy.url, mine, tokens.get(mine)!).run('cli')).status,
          'success',
        );
      }
      // Recorded now, so newer than anything this edge holds: only its device can give it away.
      const recording: FaultProxy['fault'] = { kind: 'record' };
      proxy.fault = recording;
      await using scratch = await createTestDatabase('edge');
      await testSyncer(scratch, proxy.url, theirs, tokens.get(theirs)!).run('cli');
      const recorded = (recording as { recorded?: { contentType: string; body: Buffer } }).recorded!;
      const before = await edgeRows(edge.pool);
      proxy.fault = { kind: 'replay', recorded };
      const result = await testSyncer(edge, proxy.url, mine, tokens.get(mine)!).run('cli');
      proxy.fault = { kind: 'none' };
      assert.equal(result.status, 'failed');
      // Signed for another request (its nonce), it is refused before the edge even looks at
      // whose it is (which it could not tell before its first sync).
      assert.equal(result.error?.code, 'MANIFEST_STALE', result.error?.message);
      assert.match(result.error!.message, /answers another request/);
      assert.deepEqual(await edgeRows(edge.pool), before);
    }
  });

  it("refuses a manifest for another device even when it answers this request (Central's mistake)", async () => {
    const [mine, theirs] = [macs[0]!, macs[1]!];
    await using edge = await createTestDatabase('edge');
    proxy.fault = { kind: 'none' };
    assert.equal((await testSyncer(edge, proxy.url, mine, tokens.get(mine)!).run('cli')).status, 'success');
    await central.pool.query(`UPDATE users SET display_name = display_name || ' +', updated_at = now()`);
    const { rows } = await central.pool.query<{ id: string }>(
      'SELECT id FROM devices WHERE mac = $1::macaddr',
      [theirs],
    );
    const before = await edgeRows(edge.pool);
    // Signed again by Central's key, this request's nonce kept: only the device id is wrong.
    proxy.fault = {
      kind: 'manifest',
      edit: (m) => void ((m.filters as { deviceId: string }).deviceId = rows[0]!.id),
    };
    const result = await testSyncer(edge, proxy.url, mine, tokens.get(mine)!).run('cli');
    proxy.fault = { kind: 'none' };
    assert.equal(result.error?.code, 'MANIFEST_NOT_FOR_DEVICE', result.error?.message);
    assert.deepEqual(await edgeRows(edge.pool), before);
  });

  it('refuses a manifest without the request nonce (a replay from before the upgrade)', async () => {
    await using edge = await createTestDatabase('edge');
    proxy.fault = { kind: 'manifest', edit: (m) => void delete m.requestNonce };
    const result = await testSyncer(edge, proxy.url, macs[0]!, tokens.get(macs[0]!)!).run('cli');
    proxy.fault = { kind: 'none' };
    assert.equal(result.error?.code, 'MANIFEST_STALE', result.error?.message);
    assert.match(result.error!.message, /carries no requestNonce/);
    assert.equal((await edge.pool.query('SELECT count(*)::int AS n FROM users')).rows[0].n, 0);
  });

  describe('a slow, steady link', { concurrency: true }, () => {
    // About 12 s for the body, in pieces well inside the stall timeout.
    const drip = { kind: 'drip', chunks: 60, everyMs: 200 } as const;

    it('commits nothing once the manifest expired during the load', async () => {
      await using shortLived = await startCentral(central, { MANIFEST_TTL_SECONDS: '10' });
      const slow = await startFaultProxy(shortLived.url);
      try {
        await using edge = await createTestDatabase('edge');
        slow.fault = drip;
        const result = await testSyncer(edge, slow.url, macs[0]!, tokens.get(macs[0]!)!).run('cli');
        assert.equal(result.status, 'failed');
        assert.equal(result.error?.code, 'MANIFEST_EXPIRED');
        assert.equal((await edge.pool.query('SELECT count(*)::int AS n FROM users')).rows[0].n, 0);
        assert.equal((await ledger(edge))?.error_code, 'MANIFEST_EXPIRED');
      } finally {
        await slow.close();
      }
    });

    it('records the end of a slow sync at its commit, not at its transaction start', async () => {
      const slow = await startFaultProxy(api.url);
      try {
        await using edge = await createTestDatabase('edge');
        slow.fault = { kind: 'drip', chunks: 20, everyMs: 100 };
        const result = await testSyncer(edge, slow.url, macs[0]!, tokens.get(macs[0]!)!).run('cli');
        assert.equal(result.status, 'success', JSON.stringify(result.error));
        const { rows } = await edge.pool.query<{ ms: number; duration_ms: number }>(
          `SELECT (extract(epoch FROM completed_at - started_at) * 1000)::int AS ms, duration_ms
             FROM edge_sync_log WHERE id = $1`,
          [result.syncId],
        );
        assert.ok(rows[0]!.duration_ms >= 1500, `the load took ${rows[0]!.duration_ms} ms`);
        assert.ok(rows[0]!.ms >= rows[0]!.duration_ms - 100, JSON.stringify(rows[0]));
      } finally {
        await slow.close();
      }
    });

    it('gives up at the sync deadline, however steadily bytes arrive', async () => {
      const slow = await startFaultProxy(api.url);
      try {
        await using edge = await createTestDatabase('edge');
        slow.fault = drip;
        const started = Date.now();
        const result = await testSyncer(edge, slow.url, macs[1]!, tokens.get(macs[1]!)!, {
          SYNC_DEADLINE_SECONDS: '10',
        }).run('cli');
        assert.equal(result.status, 'failed');
        assert.equal(result.error?.code, 'SYNC_DEADLINE');
        assert.ok(Date.now() - started < 11_500, 'stopped at the deadline, not at the end of the body');
        assert.equal((await edge.pool.query('SELECT count(*)::int AS n FROM users')).rows[0].n, 0);
      } finally {
        await slow.close();
      }
    });
  });
});
