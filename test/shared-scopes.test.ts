/**
 * The first device of a location that nothing is cached for gets its location's shared
 * tables read with other such locations', in one session: byte for byte the digests and
 * pieces a session of its own computes, and used only at the version the request read.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CentralMetrics } from '../src/central/metrics.ts';
import { deviceFromRow, type Device, type DeviceRow } from '../src/central/model.ts';
import { setScopeAndReadVersion } from '../src/central/sync/repo/scope.ts';
import { OwnRowReader } from '../src/central/sync/scope/own-rows.ts';
import { scopeDigests } from '../src/central/sync/scope/digests.ts';
import { scopeVersionParts } from '../src/central/sync/scope/version.ts';
import { answerFromMemory } from './helpers/choose.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { SharedScopeReader } from '../src/central/sync/scope/shared-scopes.ts';
import { SnapshotSession } from '../src/central/sync/sources/snapshot-session.ts';
import { SnapshotSource } from '../src/central/sync/sources/snapshot-source.ts';
import { ScopeMemory } from '../src/central/sync/memory/memory.ts';
import type { TableDigest } from '../src/contract/canonical.ts';
import { DATA_MODEL } from '../src/contract/data-model.ts';
import { createPool, type Pool } from '../src/platform/db.ts';
import { createLogger } from '../src/platform/logger.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

const pieces = { global: undefined, tables: undefined, pieces: true };
const log = createLogger('test', 'silent');
/** A 50 ms gap: every request made at once but the first goes in the second batch. */
const ONE_BATCH = { maxItems: 64, concurrency: 1, minGapMs: 50 };

describe('shared scopes read in batches', () => {
  let db: TestDatabase;
  let rowPool: Pool;
  /** One device of each location, and one of a location with no groups and no areas. */
  let devices: Device[];

  before(async () => {
    db = await createTestDatabase('central');
    await seedCentral(db.pool, { ...DEFAULT_SHAPE, companies: 2 }, { reset: false });
    // A location whose groups, users and areas are none: its tables are empty, not absent.
    await db.pool.query(
      `WITH l AS (INSERT INTO locations (id, company_id, name, timezone, created_at, updated_at)
                  SELECT gen_random_uuid(), id, 'empty', 'UTC', now(), now() FROM companies ORDER BY id LIMIT 1
                  RETURNING id)
       INSERT INTO devices (id, location_id, mac, name, created_at, updated_at)
       SELECT gen_random_uuid(), id, '02:00:00:00:ee:01', 'lonely', now(), now() FROM l`,
    );
    rowPool = createPool(db.url, { max: 1, applicationName: 'test-shared-scopes' });
    // The lonely location last: the tests below edit the first one's users.
    const { rows } = await db.pool.query<DeviceRow>(
      `SELECT * FROM (
         SELECT DISTINCT ON (d.location_id) d.id, d.mac::text AS mac, d.location_id, l.company_id, d.is_enabled
           FROM devices d JOIN locations l ON l.id = d.location_id ORDER BY d.location_id, d.mac) x
        ORDER BY x.mac = '02:00:00:00:ee:01', x.location_id`,
    );
    devices = rows.map(deviceFromRow);
    assert.equal(devices.length, 7);
  });
  after(async () => {
    await rowPool?.end();
    await db?.[Symbol.asyncDispose]();
  });

  function caches(pool = db.pool) {
    const metrics = new CentralMetrics({ defaults: false });
    const memory = new ScopeMemory({ digestEntries: 100, tableBytes: 16 * 2 ** 20 });
    const source = new SnapshotSource(pool, undefined, metrics);
    return {
      memory,
      metrics,
      ownRows: new OwnRowReader(rowPool),
      sharedScopes: new SharedScopeReader(source, memory, log, ONE_BATCH),
    };
  }
  const sessions = async (c: ReturnType<typeof caches>) =>
    (await c.metrics.registry.getSingleMetric('dbupdate_central_snapshot_reads_total')!.get()).values.reduce(
      (n, v) => n + v.value,
      0,
    );

  /** What a snapshot session of its own computes for `device`, and its caches. */
  async function inSession(device: Device) {
    const c = { memory: new ScopeMemory({ digestEntries: 100, tableBytes: 16 * 2 ** 20 }) };
    const session = await SnapshotSession.open(db.pool);
    try {
      const version = await setScopeAndReadVersion(session.client, device);
      const metrics = new CentralMetrics({ defaults: false });
      const { digests } = await scopeDigests({ ...c, metrics }, session.client, device, DATA_MODEL, version);
      return { version, digests, memory: c.memory };
    } finally {
      await session.close();
    }
  }
  const shared = (digests: TableDigest[]) => digests.filter((t) => t.name !== 'devices');

  it('hashes and cuts many locations in one session exactly as a session of each does', async () => {
    const c = caches();
    const expected = await Promise.all(devices.map(inSession));
    const read = await Promise.all(
      devices.map((d, i) => c.sharedScopes.read(d, expected[i]!.version, DATA_MODEL)),
    );
    assert.deepEqual(
      read,
      devices.map(() => true),
    );
    // The batcher runs the first at once and gathers the others while it is in flight.
    assert.equal(await sessions(c), 2, 'two sessions for seven locations');
    for (const [i, device] of devices.entries()) {
      const want = expected[i]!;
      const got = c.memory.sharedDigests(device, want.version, DATA_MODEL.version);
      assert.deepEqual(got, shared(want.digests));
      for (const t of got!) {
        const cut = want.memory.pieces(t);
        assert.deepEqual(c.memory.pieces(t), cut, `${t.name}: the same pieces`);
        for (const p of cut!)
          assert.deepEqual(c.memory.pieceRows(t.name, p), want.memory.pieceRows(t.name, p));
      }
    }
    const empty = expected.at(-1)!.digests.find((t) => t.name === 'users');
    assert.ok(expected.some((e) => e.digests.find((t) => t.name === 'users')!.rowCount > 0));
    assert.ok(empty, 'the lonely location has a users digest');
  });

  it("answers a cold device from the batch and its own row, at the request's version only", async () => {
    const c = caches();
    const [device] = devices;
    const before = await inSession(device!);
    const answer = await answerFromMemory(c, device!, DATA_MODEL, before.version, pieces);
    assert.deepEqual(answer?.tables, before.digests, 'the digests a session of its own computes');
    assert.equal(await sessions(c), 1, 'the batch, and no session of its own');
    const counted = await c.metrics.registry.getSingleMetric('dbupdate_central_digest_cache_total')!.get();
    assert.deepEqual(
      counted.values.map((v) => [v.labels.result, v.value]),
      [['batched', 1]],
    );

    // A user of its scope edited after the request read its version: the batch reads the
    // new version, which is cached, and the request made at the old one is not answered.
    await db.pool.query(
      `UPDATE users SET display_name = display_name || ' (edited)'
        WHERE id = (SELECT gu.user_id FROM group_users gu JOIN location_groups lg USING (group_id)
                     WHERE lg.location_id = $1 LIMIT 1)`,
      [device!.locationId],
    );
    const other = caches();
    assert.equal(await other.sharedScopes.read(device!, before.version, DATA_MODEL), false);
    assert.equal(
      await answerFromMemory(other, device!, DATA_MODEL, before.version, pieces),
      undefined,
      'an answer at the old version is not made from the new rows',
    );
    const after = await inSession(device!);
    assert.notEqual(scopeVersionParts(after.version).location, scopeVersionParts(before.version).location);
    assert.deepEqual(
      other.memory.sharedDigests(device!, after.version, DATA_MODEL.version),
      shared(after.digests),
    );
    assert.notDeepEqual(shared(after.digests), shared(before.digests));
  });

  it('a batch that fails leaves its requests to sessions of their own', async () => {
    const down = createPool('postgres://nobody@127.0.0.1:1/none', { max: 1, applicationName: 'test-down' });
    try {
      const c = caches(down);
      const { version } = await inSession(devices[1]!);
      assert.equal(await c.sharedScopes.read(devices[1]!, version, DATA_MODEL), false);
      assert.equal(await answerFromMemory(c, devices[1]!, DATA_MODEL, version, pieces), undefined);
    } finally {
      await down.end();
    }
  });
});
