/**
 * Invalidation no coarser than a device's scope, and never missing a change: random edits
 * of every table (inserts, updates, deletes, links made and broken, devices moved), and
 * after each one every device whose scope content changed has a new scope version, while
 * an edited user changes the version only of devices whose scope holds that user.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { findDeviceByMac } from '../src/central/sync/repo/devices.ts';
import { scopeVersion } from './helpers/scope.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { centralScopeRows } from './helpers/edge.ts';

/** One edit: SQL that picks its own rows at random (seeded by `n`), within the same-company rules. */
const EDITS: Record<string, (n: number) => string> = {
  company: (n) =>
    `UPDATE companies SET name = name || '${n}' WHERE id = (SELECT id FROM companies ORDER BY id OFFSET ${n % 2} LIMIT 1)`,
  location: (n) =>
    `UPDATE locations SET address = 'a${n}' WHERE id = (SELECT id FROM locations ORDER BY id OFFSET ${n % 6} LIMIT 1)`,
  newLocation: (n) =>
    `INSERT INTO locations (id, company_id, name, timezone, created_at, updated_at)
     SELECT gen_random_uuid(), id, 'new ${n}', 'UTC', now(), now() FROM companies ORDER BY id OFFSET ${n % 2} LIMIT 1`,
  group: (n) =>
    `UPDATE groups SET description = 'd${n}' WHERE id = (SELECT id FROM groups ORDER BY id OFFSET ${n % 12} LIMIT 1)`,
  link: (n) =>
    `INSERT INTO location_groups SELECT l.id, g.id FROM locations l JOIN groups g ON g.company_id = l.company_id
      WHERE NOT EXISTS (SELECT 1 FROM location_groups x WHERE x.location_id = l.id AND x.group_id = g.id)
      ORDER BY l.id, g.id OFFSET ${n % 7} LIMIT 1`,
  unlink: (n) =>
    `DELETE FROM location_groups WHERE (location_id, group_id) = (SELECT location_id, group_id FROM location_groups ORDER BY 1, 2 OFFSET ${n % 9} LIMIT 1)`,
  user: (n) =>
    `UPDATE users SET display_name = 'u${n}' WHERE id = (SELECT id FROM users ORDER BY id OFFSET ${n % 400} LIMIT 1)`,
  newUser: (n) =>
    `INSERT INTO users (id, company_id, email, display_name, is_active, created_at, updated_at)
     SELECT gen_random_uuid(), id, 'n${n}@x', 'N', true, now(), now() FROM companies ORDER BY id OFFSET ${n % 2} LIMIT 1`,
  dropUser: () =>
    `DELETE FROM users WHERE id = (SELECT id FROM users u WHERE NOT EXISTS (SELECT 1 FROM group_users gu WHERE gu.user_id = u.id) LIMIT 1)`,
  join: (n) =>
    `INSERT INTO group_users SELECT g.id, u.id FROM groups g JOIN users u ON u.company_id = g.company_id
      WHERE NOT EXISTS (SELECT 1 FROM group_users x WHERE x.group_id = g.id AND x.user_id = u.id)
      ORDER BY md5(g.id::text || u.id::text || ${n}) LIMIT 1`,
  leave: (n) =>
    `DELETE FROM group_users WHERE (group_id, user_id) = (SELECT group_id, user_id FROM group_users ORDER BY md5(group_id::text || user_id::text || ${n}) LIMIT 1)`,
  area: (n) =>
    `UPDATE areas SET floor = ${n % 9} WHERE id = (SELECT id FROM areas ORDER BY id OFFSET ${n % 24} LIMIT 1)`,
  newArea: (n) =>
    `INSERT INTO areas (id, location_id, name, created_at, updated_at)
     SELECT gen_random_uuid(), id, 'area ${n}', now(), now() FROM locations ORDER BY id OFFSET ${n % 6} LIMIT 1`,
  dropArea: (n) => `DELETE FROM areas WHERE id = (SELECT id FROM areas ORDER BY id OFFSET ${n % 20} LIMIT 1)`,
  device: (n) =>
    `UPDATE devices SET name = 'dev ${n}' WHERE id = (SELECT id FROM devices ORDER BY id OFFSET ${n % 12} LIMIT 1)`,
  moveDevice: (n) =>
    `UPDATE devices d SET location_id = (SELECT l2.id FROM locations l2 JOIN locations l ON l.company_id = l2.company_id
        WHERE l.id = d.location_id AND l2.id <> d.location_id ORDER BY l2.id LIMIT 1)
      WHERE d.id = (SELECT id FROM devices ORDER BY id OFFSET ${n % 12} LIMIT 1)`,
};

describe('scope versions', () => {
  let db: TestDatabase;
  let macs: string[];

  before(async () => {
    db = await createTestDatabase('central');
    await seedCentral(db.pool, { ...DEFAULT_SHAPE, usersPerCompany: 200 }, { reset: false });
    macs = (
      await db.pool.query<{ mac: string }>('SELECT mac::text AS mac FROM devices ORDER BY mac')
    ).rows.map((r) => r.mac);
    assert.equal(macs.length, 12);
  });
  after(() => db?.[Symbol.asyncDispose]());

  /** Per device: its scope version, and a digest of its scope's rows. */
  async function observe(): Promise<Map<string, { version: string; content: string }>> {
    const seen = new Map<string, { version: string; content: string }>();
    for (const mac of macs) {
      const device = (await findDeviceByMac(db.pool, mac))!;
      const content = createHash('sha256')
        .update(JSON.stringify(await centralScopeRows(db.pool, mac)))
        .digest('hex');
      seen.set(mac, { version: await scopeVersion(db.pool, device), content });
    }
    return seen;
  }

  it('change with every edit that changes a scope, for every table', async () => {
    let changed = 0;
    let before = await observe();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...Object.keys(EDITS)), fc.nat(10_000), async (edit, n) => {
        await db.pool.query(EDITS[edit]!(n));
        const now = await observe();
        for (const mac of macs) {
          const [b, a] = [before.get(mac)!, now.get(mac)!];
          if (b.content !== a.content) {
            changed++;
            assert.notEqual(a.version, b.version, `${edit}(${n}) changed ${mac}'s scope but not its version`);
          }
        }
        before = now;
      }),
      { numRuns: 120, seed: 20261202 },
    );
    assert.ok(changed > 30, `only ${changed} scope changes were exercised`);
  });

  it('change for an edited user only where the user is in scope', async () => {
    const { rows } = await db.pool.query<{ id: string }>(
      'SELECT user_id AS id FROM group_users GROUP BY user_id ORDER BY user_id LIMIT 10',
    );
    for (const { id } of rows) {
      const before = await observe();
      await db.pool.query(`UPDATE users SET phone = md5(random()::text) WHERE id = $1`, [id]);
      const now = await observe();
      for (const mac of macs) {
        const [b, a] = [before.get(mac)!, now.get(mac)!];
        assert.equal(a.version !== b.version, a.content !== b.content, `${mac} after editing user ${id}`);
      }
    }
  });
});
