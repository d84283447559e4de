/**
 * Unchanged data costs almost nothing: Central answers from its digest cache while a device's
 * scope version holds, never with stale data after a change. The cache is keyed by the scope
 * version (test/scope-versions.test.ts); the company version tested first here no longer keys
 * anything, but every change still bumps it in the same transaction, and its row's lock is
 * what makes two writers of one company take turns, so that a scope version cannot miss a
 * change made while a row's scope moved (migration 0008).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { readWholeSnapshot, requestSnapshot } from './helpers/snapshot.ts';
import { waitFor } from './helpers/wait.ts';

describe('company versions and the digest cache', () => {
  let db: TestDatabase;
  let api: RunningCentral;
  let mac: string;
  let token: string;
  let mine: string;
  let other: string;

  before(async () => {
    db = await createTestDatabase('central');
    const seeded = await seedCentral(
      db.pool,
      { ...DEFAULT_SHAPE, companies: 2, usersPerCompany: 100 },
      { reset: false },
    );
    mac = seeded.devices[0]!.mac;
    token = (await enrollDevice(db.pool, mac)).secret;
    const { rows } = await db.pool.query(
      `SELECT l.company_id AS mine, (SELECT id FROM companies WHERE id <> l.company_id LIMIT 1) AS other
         FROM devices d JOIN locations l ON l.id = d.location_id WHERE d.mac = $1`,
      [mac],
    );
    mine = rows[0].mine;
    other = rows[0].other;
    api = await startCentral(db);
  });
  after(async () => {
    await api?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  async function versions(): Promise<{ mine: number; other: number }> {
    const { rows } = await db.pool.query('SELECT company_id, version::int AS v FROM data_versions');
    const v = new Map(rows.map((r) => [r.company_id, r.v]));
    return { mine: v.get(mine) ?? 0, other: v.get(other) ?? 0 };
  }

  it('bumps exactly the company whose rows change, for every table and statement kind (the lock scope versions rely on)', async () => {
    const changes: [string, string, unknown[]][] = [
      ['companies', `UPDATE companies SET name = name || '.' WHERE id = $1`, [mine]],
      ['locations', `UPDATE locations SET name = name || '.' WHERE company_id = $1`, [mine]],
      ['groups', `UPDATE groups SET name = name || '.' WHERE company_id = $1`, [mine]],
      [
        'users',
        `UPDATE users SET phone = '1' WHERE id = (SELECT id FROM users WHERE company_id = $1 LIMIT 1)`,
        [mine],
      ],
      [
        'areas',
        `DELETE FROM areas WHERE id = (SELECT a.id FROM areas a JOIN locations l ON l.id = a.location_id WHERE l.company_id = $1 LIMIT 1)`,
        [mine],
      ],
      ['devices', `UPDATE devices SET name = name || '.' WHERE mac = $1`, [mac]],
      [
        'location_groups',
        `DELETE FROM location_groups WHERE (location_id, group_id) =
           (SELECT lg.location_id, lg.group_id FROM location_groups lg JOIN groups g ON g.id = lg.group_id WHERE g.company_id = $1 LIMIT 1)`,
        [mine],
      ],
      [
        'group_users',
        `DELETE FROM group_users WHERE (group_id, user_id) =
           (SELECT gu.group_id, gu.user_id FROM group_users gu JOIN groups g ON g.id = gu.group_id WHERE g.company_id = $1 LIMIT 1)`,
        [mine],
      ],
    ];
    for (const [table, sql, params] of changes) {
      const before = await versions();
      await db.pool.query(sql, params);
      const after = await versions();
      assert.equal(after.mine, before.mine + 1, `${table}: bumped`);
      assert.equal(after.other, before.other, `${table}: other company untouched`);
    }
    const before = await versions();
    await db.pool.query(
      `INSERT INTO users (id, company_id, email, display_name, is_active, created_at, updated_at)
       VALUES (gen_random_uuid(), $1, 'x@y', 'X', true, now(), now())`,
      [other],
    );
    assert.deepEqual(await versions(), { mine: before.mine, other: before.other + 1 });
  });

  async function cacheCount(result: 'hit' | 'miss'): Promise<number> {
    const text = await (await fetch(`${api.url}/metrics`)).text();
    return Number(
      new RegExp(`^dbupdate_central_digest_cache_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(
        text,
      )?.[1] ?? 0,
    );
  }
  async function manifest(known?: string) {
    const res = await requestSnapshot(api.url, { mac, knownGlobalSha256: known ?? null }, token);
    return (await readWholeSnapshot(res.body!)).manifest;
  }

  it('answers an unchanged device from the cache, and never with stale data after a change', async () => {
    const first = await manifest();
    const hits = await cacheCount('hit');
    const again = await manifest(first.globalSha256);
    assert.equal(again.rowsIncluded, false);
    assert.equal(await cacheCount('hit'), hits + 1, 'served from the cache');

    await db.pool.query(
      `UPDATE users SET updated_at = now() WHERE company_id = $1 AND id IN (SELECT user_id FROM group_users) AND ctid = (SELECT ctid FROM users WHERE company_id = $1 AND id IN (SELECT user_id FROM group_users) LIMIT 1)`,
      [other],
    );
    const otherChanged = await manifest(first.globalSha256);
    assert.equal(otherChanged.rowsIncluded, false, 'a change in another company changes nothing here');
    assert.equal(await cacheCount('hit'), hits + 2);

    const misses = await cacheCount('miss');
    await db.pool.query(
      `UPDATE users SET display_name = 'changed' WHERE id = (SELECT gu.user_id FROM group_users gu
         JOIN location_groups lg ON lg.group_id = gu.group_id JOIN devices d ON d.location_id = lg.location_id
        WHERE d.mac = $1 LIMIT 1)`,
      [mac],
    );
    const changed = await manifest(first.globalSha256);
    assert.equal(await cacheCount('miss'), misses + 1);
    assert.notEqual(changed.globalSha256, first.globalSha256);
    assert.equal(changed.rowsIncluded, true);
  });

  it('answers an unchanged device without a snapshot session, slot or row read', async () => {
    const sessions = async () =>
      Number(
        /^dbupdate_central_snapshot_sessions_total (\d+)$/m.exec(
          await (await fetch(`${api.url}/metrics`)).text(),
        )?.[1],
      );
    const first = await manifest();
    const opened = await sessions();
    const again = await Promise.all([1, 2, 3].map(() => manifest(first.globalSha256)));
    assert.deepEqual(
      again.map((m) => m.rowsIncluded),
      [false, false, false],
    );
    assert.equal(await sessions(), opened, 'no snapshot session for the unchanged answers');
    // Each still has its manifest and its audit row, finished once the response closed.
    const expected = again.map(() => ({ status: 'unchanged', stored: true }));
    const audited = await waitFor(
      async () =>
        (
          await db.pool.query(
            `SELECT r.status, m.manifest_id IS NOT NULL AS stored FROM sync_requests r
               LEFT JOIN sync_manifest_headers m ON m.manifest_id = r.manifest_id WHERE r.manifest_id = ANY($1)`,
            [again.map((m) => m.manifestId)],
          )
        ).rows,
      (rows) => JSON.stringify(rows) === JSON.stringify(expected),
    );
    assert.deepEqual(audited, expected);
    // A change in its scope: new digests and rows, read in a session.
    await db.pool.query(
      `UPDATE users SET phone = md5(random()::text) WHERE id = (SELECT gu.user_id FROM group_users gu
         JOIN location_groups lg ON lg.group_id = gu.group_id JOIN devices d ON d.location_id = lg.location_id
        WHERE d.mac = $1 LIMIT 1)`,
      [mac],
    );
    const changedAsk = await manifest(first.globalSha256);
    assert.equal(changedAsk.rowsIncluded, true);
    assert.equal(await sessions(), opened + 1, 'a device whose scope changed gets a session');
  });
});
