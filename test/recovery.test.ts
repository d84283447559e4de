/**
 * The trust rule: only a failure that casts doubt on the local data makes the next sync
 * reload everything. Central down for longer than the interval is not such a failure, so
 * when it comes back the fleet gets "unchanged" answers, not a storm of full snapshots.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { TABLES } from '../src/contract/tables.ts';
import type { Syncer } from '../src/edge/sync/run.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { centralScopeRows, edgeRows, testSyncer } from './helpers/edge.ts';
import { waitFor } from './helpers/wait.ts';

const EDGES = 6;

describe('recovery after a Central outage', () => {
  let central: TestDatabase;
  let api: RunningCentral;
  let port: number;
  const edges: { db: TestDatabase; syncer: Syncer; mac: string }[] = [];

  before(async () => {
    central = await createTestDatabase('central');
    await seedCentral(
      central.pool,
      { ...DEFAULT_SHAPE, companies: 1, locationsPerCompany: 3, devicesPerLocation: 2, usersPerCompany: 300 },
      { reset: false },
    );
    api = await startCentral(central);
    port = (api.app.server.address() as AddressInfo).port;
    const { rows } = await central.pool.query<{ mac: string }>(
      'SELECT mac::text AS mac FROM devices ORDER BY mac',
    );
    assert.equal(rows.length, EDGES);
    for (const { mac } of rows) {
      const db = await createTestDatabase('edge');
      const token = (await enrollDevice(central.pool, mac)).secret;
      edges.push({ db, mac, syncer: testSyncer(db, api.url, mac, token) });
    }
  });
  after(async () => {
    await api?.[Symbol.asyncDispose]();
    for (const e of edges) await e.db[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
  });

  const syncAll = () => Promise.all(edges.map((e) => e.syncer.run('schedule')));
  const auditSince = async (id: string) =>
    (
      await central.pool.query<{ status: string; n: number }>(
        'SELECT status, count(*)::int AS n FROM sync_requests WHERE id > $1 GROUP BY status ORDER BY status',
        [id],
      )
    ).rows;
  const lastAuditId = async () =>
    (await central.pool.query<{ id: string }>('SELECT coalesce(max(id), 0)::text AS id FROM sync_requests'))
      .rows[0]!.id;

  it('answers the whole fleet "unchanged" when Central comes back, loading nothing', async () => {
    for (const r of await syncAll()) assert.equal(r.status, 'success', JSON.stringify(r.error));

    await api[Symbol.asyncDispose]();
    // Two rounds with Central down: longer than an interval.
    for (let round = 0; round < 2; round++) {
      for (const r of await syncAll()) assert.equal(r.error?.code, 'CENTRAL_UNREACHABLE');
    }
    api = await startCentral(central, { PORT: String(port) });
    const since = await lastAuditId();

    const back = await syncAll();
    assert.deepEqual(
      back.map((r) => [r.status, r.rowsLoaded]),
      edges.map(() => ['unchanged', 0]),
    );
    // Each audit row is finished once its response closed, which may be just after the edge moved on.
    const expected = [{ status: 'unchanged', n: EDGES }];
    const audit = await waitFor(
      () => auditSince(since),
      (rows) => JSON.stringify(rows) === JSON.stringify(expected),
    );
    assert.deepEqual(audit, expected);
    for (const e of edges)
      assert.deepEqual(await edgeRows(e.db.pool), await centralScopeRows(central.pool, e.mac));
  });

  it('reloads every table after a failure that casts doubt on the local data, however many failures follow', async () => {
    const [edge] = edges;
    // Local drift in a table the next sync would keep, and a change in Central so that rows come.
    await edge!.db.pool.query(`UPDATE areas SET name = name || ' (drifted)'`);
    await central.pool.query(
      `UPDATE users SET display_name = display_name || ' *', updated_at = now()
        WHERE id IN (SELECT user_id FROM group_users LIMIT 2)`,
    );
    const doubted = await edge!.syncer.run('schedule');
    assert.equal(doubted.error?.code, 'HASH_MISMATCH');

    await api[Symbol.asyncDispose]();
    assert.equal((await edge!.syncer.run('schedule')).error?.code, 'CENTRAL_UNREACHABLE');
    api = await startCentral(central, { PORT: String(port) });

    const healed = await edge!.syncer.run('schedule');
    assert.equal(healed.status, 'success', JSON.stringify(healed.error));
    assert.deepEqual(
      healed.tablesLoaded,
      TABLES.map((t) => t.name),
    );
    assert.deepEqual(await edgeRows(edge!.db.pool), await centralScopeRows(central.pool, edge!.mac));
    // Trust is back: the next sync offers what it holds again.
    assert.equal((await edge!.syncer.run('schedule')).status, 'unchanged');
  });

  it('takes a failure as casting doubt by its ledger reason, not by its code alone', async () => {
    const edge = edges[1]!;
    const fail = (reason: string | null) =>
      edge.db.pool.query(
        `INSERT INTO edge_sync_log (status, trigger, completed_at, error_code, error_reason, error_text)
         VALUES ('failed', 'schedule', now(), 'SNAPSHOT_INVALID', $1, 'snapshot breaks foreign keys')`,
        [reason],
      );
    // Up to date with Central's change in the test before.
    assert.notEqual((await edge.syncer.run('schedule')).status, 'failed');
    // A malformed snapshot rolled back before touching anything: what the edge holds is still offered.
    await fail(null);
    assert.equal((await edge.syncer.run('schedule')).status, 'unchanged');
    // One that broke keys against the tables this edge kept puts them in doubt: all reloaded.
    await fail('KEPT_TABLES_BROKEN');
    const reloaded = await edge.syncer.run('schedule');
    assert.equal(reloaded.status, 'success', JSON.stringify(reloaded.error));
    assert.deepEqual(
      reloaded.tablesLoaded,
      TABLES.map((t) => t.name),
    );
  });
});
