/**
 * Central and Edge end to end: two real databases, real HTTP (through a loopback
 * fault proxy), real COPY. Rows are compared as rows, not only as hashes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { globalSha256 } from '../src/contract/canonical.ts';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { verifyLocal } from '../src/edge/verify/local.ts';
import { SYNC_LOCK_KEY, type Syncer } from '../src/edge/sync/run.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { centralScopeRows, edgeRows, testSyncer } from './helpers/edge.ts';
import { startFaultProxy, type FaultProxy } from './helpers/proxy.ts';
import { waitFor } from './helpers/wait.ts';

describe('end to end', () => {
  let central: TestDatabase;
  let edge: TestDatabase;
  let api: RunningCentral;
  let proxy: FaultProxy;
  let syncer: Syncer;
  let mac: string;
  let token: string;

  before(async () => {
    central = await createTestDatabase('central');
    edge = await createTestDatabase('edge');
    const seeded = await seedCentral(
      central.pool,
      // Enough users that the device's `users` table is cut into several pieces.
      { ...DEFAULT_SHAPE, usersPerCompany: 1500 },
      { reset: false },
    );
    mac = seeded.devices[0]!.mac;
    token = (await enrollDevice(central.pool, mac)).secret;
    api = await startCentral(central);
    proxy = await startFaultProxy(api.url);
    syncer = testSyncer(edge, proxy.url, mac, token);
  });
  after(async () => {
    await proxy?.close();
    await api?.[Symbol.asyncDispose]();
    await edge?.[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
  });

  async function lastLedger() {
    const { rows } = await edge.pool.query(
      'SELECT status, error_code, manifest_id, ack_status FROM edge_sync_log ORDER BY id DESC LIMIT 1',
    );
    return rows[0] as {
      status: string;
      error_code: string | null;
      manifest_id: string | null;
      ack_status: string | null;
    };
  }

  it('makes the edge tables equal to the device scope on the first sync, and acknowledges', async () => {
    const result = await syncer.run('cli');
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.equal(result.ack, 'sent');
    const expected = await centralScopeRows(central.pool, mac);
    assert.ok(expected.users!.length > 50, 'a scope worth comparing');
    assert.deepEqual(await edgeRows(edge.pool), expected);
    const ack = await central.pool.query(
      'SELECT result, device_counts_json, device_hashes_json, payload_sha256 FROM sync_acknowledgements WHERE manifest_id = $1',
      [result.manifestId],
    );
    assert.equal(ack.rows[0].result, 'Success');
    assert.equal(ack.rows[0].device_counts_json.users, expected.users!.length);
    const served = await waitFor(
      () =>
        central.pool.query('SELECT payload_sha256 FROM sync_requests WHERE manifest_id = $1', [
          result.manifestId,
        ]),
      (r) => r.rows[0]?.payload_sha256 != null,
    );
    assert.equal(
      ack.rows[0].payload_sha256,
      served.rows[0].payload_sha256,
      'edge received exactly the bytes central sent',
    );
    assert.deepEqual((await verifyLocal(edge.pool)).drifted, []);
  });

  it('brings updates, inserts, deletes and membership changes at the next sync', async () => {
    const scope = await centralScopeRows(central.pool, mac);
    const userId = scope.users![0]!.slice(1, 37);
    const groupId = scope.groups![0]!.slice(1, 37);
    await central.pool.query(`UPDATE users SET display_name = 'Renamed ✓', settings = 'null' WHERE id = $1`, [
      userId,
    ]);
    await central.pool.query(
      `DELETE FROM group_users WHERE user_id = (SELECT user_id FROM group_users WHERE group_id = $1 OFFSET 3 LIMIT 1)`,
      [groupId],
    );
    const loner = await central.pool.query(
      `SELECT u.id FROM users u JOIN groups g ON g.company_id = u.company_id WHERE g.id = $1
          AND NOT EXISTS (SELECT 1 FROM group_users gu WHERE gu.user_id = u.id) LIMIT 1`,
      [groupId],
    );
    await central.pool.query('INSERT INTO group_users VALUES ($1, $2)', [groupId, loner.rows[0].id]);
    await central.pool.query(
      `DELETE FROM areas WHERE id = (SELECT id FROM areas WHERE location_id = (SELECT location_id FROM devices WHERE mac = $1) LIMIT 1)`,
      [mac],
    );
    await central.pool.query(`UPDATE devices SET name = 'renamed device' WHERE mac = $1`, [mac]);

    const result = await syncer.run('cli');
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    const expected = await centralScopeRows(central.pool, mac);
    assert.notDeepEqual(expected, scope);
    assert.deepEqual(await edgeRows(edge.pool), expected);
    assert.ok(
      expected.users!.some((r) => r.includes(loner.rows[0].id)),
      'the new member arrived',
    );
  });

  it('reloads only the table that changed, and of it only the piece that changed', async () => {
    const held = await edge.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM edge_held_pieces WHERE table_name = 'users'",
    );
    assert.ok(held.rows[0]!.n > 1, `users is cut into ${held.rows[0]!.n} piece(s); the test needs several`);
    await central.pool.query(
      `UPDATE users SET display_name = display_name || ' (moved)' WHERE id = (SELECT gu.user_id FROM group_users gu
         JOIN location_groups lg ON lg.group_id = gu.group_id JOIN devices d ON d.location_id = lg.location_id
        WHERE d.mac = $1 LIMIT 1)`,
      [mac],
    );
    const result = await syncer.run('cli');
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.deepEqual(result.tablesLoaded, ['users']);
    assert.equal(result.transfer?.piecesFetched, 1, JSON.stringify(result.transfer));
    assert.deepEqual(await edgeRows(edge.pool), await centralScopeRows(central.pool, mac));
  });

  it('skips the load when the scope did not change', async () => {
    const before = await edge.pool.query('SELECT count(*)::int AS n FROM edge_sync_tables');
    const result = await syncer.run('schedule');
    assert.equal(result.status, 'unchanged');
    assert.equal(result.rowsLoaded, 0);
    assert.equal(result.ack, 'sent');
    assert.equal((await lastLedger()).status, 'unchanged');
    const after = await edge.pool.query('SELECT count(*)::int AS n FROM edge_sync_tables');
    assert.equal(after.rows[0].n, before.rows[0].n, 'nothing recorded as loaded');
  });

  describe('faults leave the edge data exactly as it was, with a Failed ledger row', () => {
    const faults: {
      name: string;
      code: string;
      arm: () => void | Promise<void>;
      disarm?: () => Promise<unknown>;
      acked: boolean;
    }[] = [
      {
        name: 'a truncated response',
        code: 'TRANSFER_CUT',
        // Inside the manifest line: a cut after it, among pieces sent inline, is resumed
        // (test/inline-pieces.test.ts).
        arm: () => void (proxy.fault = { kind: 'truncate', keepBytes: 200 }),
        acked: false,
      },
      {
        name: 'a piece corrupted on every fetch',
        code: 'SNAPSHOT_INVALID',
        arm: () => void (proxy.fault = { kind: 'replace', from: 'Renamed ✓', to: 'Renamed X' }),
        acked: true,
      },
      {
        name: 'rows that do not hash to the manifest table hash (hash mismatch)',
        code: 'HASH_MISMATCH',
        arm: () =>
          void (proxy.fault = {
            kind: 'manifest',
            edit: (m) => {
              const tables = m.tables as { name: string; rowCount: number; sha256: string }[];
              tables[4]!.sha256 = 'f'.repeat(64);
              m.globalSha256 = globalSha256(tables as never);
            },
          }),
        acked: true,
      },
      {
        name: 'a row the local database refuses (COPY fails)',
        code: 'LOAD_FAILED',
        arm: async () => {
          await edge.pool.query(
            `ALTER TABLE users ADD CONSTRAINT e2e_refuse CHECK (display_name NOT LIKE 'Renamed%') NOT VALID`,
          );
        },
        disarm: () => edge.pool.query('ALTER TABLE users DROP CONSTRAINT IF EXISTS e2e_refuse'),
        acked: true,
      },
      {
        name: 'a schema-version mismatch',
        code: 'SCHEMA_VERSION_MISMATCH',
        arm: () => void (proxy.fault = { kind: 'manifest', edit: (m) => void (m.schemaVersion = 2) }),
        acked: true,
      },
      {
        name: 'an expired manifest',
        code: 'MANIFEST_EXPIRED',
        arm: () =>
          void (proxy.fault = {
            kind: 'manifest',
            edit: (m) => void (m.expiresAt = '2020-01-01T00:00:00.000Z'),
          }),
        acked: true,
      },
      {
        name: 'a manifest whose tables do not match its global hash',
        code: 'SNAPSHOT_INVALID',
        arm: () =>
          void (proxy.fault = {
            kind: 'manifest',
            edit: (m) => void ((m.tables as { rowCount: number }[])[4]!.rowCount += 1),
          }),
        acked: true,
      },
    ];

    for (const fault of faults) {
      it(`after ${fault.name}`, async () => {
        // Force a load of companies and users (the faults act on user rows), so the sync
        // can neither skip as unchanged nor leave the users table out.
        await central.pool.query(
          `UPDATE companies SET updated_at = now() WHERE id = (SELECT company_id FROM locations l JOIN devices d ON d.location_id = l.id WHERE d.mac = $1)`,
          [mac],
        );
        await central.pool.query(`UPDATE users SET updated_at = now() WHERE display_name LIKE 'Renamed%'`);
        const before = await edgeRows(edge.pool);
        await fault.arm();
        try {
          const result = await syncer.run('cli');
          assert.equal(result.status, 'failed');
          assert.equal(result.error?.code, fault.code, result.error?.message);
          assert.deepEqual(await edgeRows(edge.pool), before, 'edge data unchanged');
          const ledger = await lastLedger();
          assert.equal(ledger.status, 'failed');
          assert.equal(ledger.error_code, fault.code);
          if (fault.acked) {
            const ack = await central.pool.query(
              'SELECT result, error_text FROM sync_acknowledgements WHERE manifest_id = $1',
              [result.manifestId],
            );
            assert.equal(ack.rows[0]?.result, 'Failed');
            assert.match(ack.rows[0].error_text, new RegExp(fault.code));
          }
        } finally {
          proxy.fault = { kind: 'none' };
          await fault.disarm?.();
        }
        const healed = await syncer.run('cli');
        assert.equal(healed.status, 'success', JSON.stringify(healed.error));
        assert.deepEqual(await edgeRows(edge.pool), await centralScopeRows(central.pool, mac));
      });
    }

    it('counts the schema-version mismatch in a metric', async () => {
      const text = await syncer.metrics.registry.metrics();
      assert.match(text, /^dbupdate_edge_schema_version_mismatches_total 1$/m);
      assert.match(text, /^dbupdate_edge_syncs_total\{result="failed",code="HASH_MISMATCH"\} 1$/m);
    });

    it('after Central is unreachable (no manifest, nothing to ack)', async () => {
      const before = await edgeRows(edge.pool);
      const offline = testSyncer(edge, 'http://127.0.0.1:9', mac, token);
      const result = await offline.run('cli');
      assert.equal(result.status, 'failed');
      assert.equal(result.error?.code, 'CENTRAL_UNREACHABLE');
      assert.equal(result.ack, 'none');
      assert.deepEqual(await edgeRows(edge.pool), before);
      assert.equal((await lastLedger()).error_code, 'CENTRAL_UNREACHABLE');
    });

    it('after Central refuses the credential', async () => {
      const wrong = testSyncer(edge, proxy.url, mac, 'dbu1_not-the-token');
      const result = await wrong.run('cli');
      assert.equal(result.error?.code, 'CENTRAL_REFUSED');
      assert.match(result.error!.message, /401 UNAUTHENTICATED/);
    });
  });

  it('keeps a failed ack and sends it before the next sync, without undoing the load', async () => {
    await central.pool.query(`UPDATE devices SET updated_at = now() WHERE mac = $1`, [mac]);
    proxy.fault = { kind: 'fail-ack', times: 10 };
    const result = await syncer.run('cli');
    proxy.fault = { kind: 'none' };
    assert.equal(result.status, 'success');
    assert.equal(result.ack, 'pending');
    assert.deepEqual(await edgeRows(edge.pool), await centralScopeRows(central.pool, mac));
    const none = await central.pool.query('SELECT 1 FROM sync_acknowledgements WHERE manifest_id = $1', [
      result.manifestId,
    ]);
    assert.equal(none.rows.length, 0);
    await syncer.run('cli');
    const acked = await central.pool.query(
      'SELECT result FROM sync_acknowledgements WHERE manifest_id = $1',
      [result.manifestId],
    );
    assert.deepEqual(acked.rows, [{ result: 'Success' }]);
    const pending = await edge.pool.query('SELECT count(*)::int AS n FROM edge_pending_acks');
    assert.equal(pending.rows[0].n, 0);
  });

  it('runs one sync at a time, in one process and across processes', async () => {
    await central.pool.query(`UPDATE devices SET updated_at = now() WHERE mac = $1`, [mac]);
    const first = syncer.run('cli');
    await assert.rejects(syncer.run('manual'), { code: 'SYNC_IN_PROGRESS' });
    assert.equal((await first).status, 'success');
    // Another process syncing this database holds the lock; take it as that process would.
    const holder = await edge.pool.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1)', [SYNC_LOCK_KEY]);
      const other = testSyncer(edge, proxy.url, mac, token);
      await assert.rejects(other.run('cli'), { code: 'SYNC_IN_PROGRESS' });
      await holder.query('SELECT pg_advisory_unlock($1)', [SYNC_LOCK_KEY]);
      assert.notEqual((await other.run('cli')).status, 'failed');
    } finally {
      holder.release();
    }
  });

  it('verify names the tables that drifted', async () => {
    assert.deepEqual((await verifyLocal(edge.pool)).drifted, []);
    await edge.pool.query(
      `UPDATE areas SET name = name || ' (edited on the edge)' WHERE id = (SELECT id FROM areas LIMIT 1)`,
    );
    await edge.pool.query(`DELETE FROM group_users WHERE ctid = (SELECT ctid FROM group_users LIMIT 1)`);
    assert.deepEqual((await verifyLocal(edge.pool)).drifted, ['group_users', 'areas']);
    const repaired = await syncer.run('cli', { full: true });
    assert.equal(repaired.status, 'success', JSON.stringify(repaired.error));
    assert.equal(repaired.tablesLoaded?.length, 8);
    assert.deepEqual((await verifyLocal(edge.pool)).drifted, []);
    assert.deepEqual(await edgeRows(edge.pool), await centralScopeRows(central.pool, mac));
  });
});
