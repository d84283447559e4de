/** `central seed`: deterministic, shaped by its flags, set-based, and leaves the schema as it found it. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { seedCentral, DEFAULT_SHAPE } from '../src/central/fleet/seed.ts';
import { createTestDatabase } from './helpers/db.ts';
import { dumpSchema } from './helpers/schema-dump.ts';

const contentHash = `SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) AS h FROM (
  SELECT row_to_json(x)::text AS t FROM users x UNION ALL SELECT row_to_json(x)::text FROM group_users x
  UNION ALL SELECT row_to_json(x)::text FROM devices x UNION ALL SELECT row_to_json(x)::text FROM locations x) s`;

describe('central seed', () => {
  it('makes the same data for the same seed, other data for another, in the requested shape', async () => {
    await using a = await createTestDatabase('central');
    await using b = await createTestDatabase('central');
    const shape = { ...DEFAULT_SHAPE, companies: 3, usersPerCompany: 120, groupsPerUser: 3 };
    const ra = await seedCentral(a.pool, shape, { reset: false });
    await seedCentral(b.pool, shape, { reset: false });
    assert.deepEqual(ra.counts, {
      companies: 3,
      locations: 9,
      groups: 18,
      location_groups: 27,
      users: 360,
      group_users: 3 * (120 - 2) * 3,
      areas: 36,
      devices: 18,
    });
    const ha = (await a.pool.query(contentHash)).rows[0].h;
    assert.equal((await b.pool.query(contentHash)).rows[0].h, ha);
    await seedCentral(b.pool, { ...shape, seed: 2 }, { reset: true });
    assert.notEqual((await b.pool.query(contentHash)).rows[0].h, ha);
    assert.equal(
      await dumpSchema(b.pool),
      await readFile(new URL('./schema/central.sql', import.meta.url), 'utf8'),
    );
  });

  it('refuses to seed over existing data without --reset, changing nothing', async () => {
    await using db = await createTestDatabase('central');
    await seedCentral(db.pool, DEFAULT_SHAPE, { reset: false });
    const before = (await db.pool.query(contentHash)).rows[0].h;
    await assert.rejects(seedCentral(db.pool, { ...DEFAULT_SHAPE, seed: 9 }, { reset: false }), {
      code: 'SEED_NOT_EMPTY',
    });
    assert.equal((await db.pool.query(contentHash)).rows[0].h, before);
  });
});
