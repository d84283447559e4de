/** Migrations: idempotent, safe when instances start together, refuse an unknown past, never drift. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import pg from 'pg';
import { centralMigrations } from '../src/central/migrations.ts';
import { createPool } from '../src/platform/db.ts';
import { migrate } from '../src/platform/migrate.ts';
import { createTestDatabase } from './helpers/db.ts';
import { dumpSchema } from './helpers/schema-dump.ts';
import { databaseUrl } from '../src/platform/db.ts';

async function emptyDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await admin.connect();
  const name = `t_empty_${Math.random().toString(16).slice(2, 10)}`;
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  return {
    url: databaseUrl(process.env.TEST_DATABASE_URL!, name),
    async drop() {
      const c = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
      await c.connect();
      await c.query(`DROP DATABASE "${name}" WITH (FORCE)`);
      await c.end();
    },
  };
}

describe('migrations', () => {
  it('apply once when two instances start together, and again change nothing', async () => {
    const db = await emptyDatabase();
    const pools = [
      createPool(db.url, { applicationName: 'a' }),
      createPool(db.url, { applicationName: 'b' }),
    ];
    try {
      const migrations = await centralMigrations();
      const results = await Promise.all(pools.map((p) => migrate(p, migrations)));
      assert.deepEqual(
        results.map((r) => r.applied.length).sort(),
        [0, migrations.length],
        'one instance applied everything, the other nothing',
      );
      const { rows } = await pools[0]!.query('SELECT id FROM dbupdate_migrations ORDER BY id');
      assert.deepEqual(
        rows.map((r) => r.id),
        migrations.map((m) => m.id),
      );
      assert.deepEqual((await migrate(pools[0]!, migrations)).applied, []);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
      await db.drop();
    }
  });

  it('refuses a database that holds a migration this code does not know', async () => {
    await using db = await createTestDatabase('central');
    await db.pool.query(
      "INSERT INTO dbupdate_migrations (id, name) VALUES (999, '0999_from_the_future.sql')",
    );
    await assert.rejects(migrate(db.pool, await centralMigrations()), { code: 'MIGRATION_UNKNOWN' });
  });

  it('rolls a failing migration back whole, its bookkeeping row included', async () => {
    await using db = await createTestDatabase('central');
    const migrations = await centralMigrations();
    const broken = {
      id: migrations.length + 1,
      name: '9999_broken.sql',
      sql: 'CREATE TABLE half_done (x int); SELECT 1/0;',
    };
    await assert.rejects(migrate(db.pool, [...migrations, broken]), { code: 'MIGRATION_FAILED' });
    const { rows } = await db.pool.query(
      "SELECT to_regclass('half_done') AS t, (SELECT count(*)::int FROM dbupdate_migrations WHERE id = $1) AS n",
      [broken.id],
    );
    assert.deepEqual(rows, [{ t: null, n: 0 }]);
  });

  for (const kind of ['central', 'edge'] as const) {
    it(`leave the ${kind} schema exactly as the committed dump (npm run schema:update to accept a change)`, async () => {
      await using db = await createTestDatabase(kind);
      const expected = await readFile(new URL(`./schema/${kind}.sql`, import.meta.url), 'utf8');
      assert.equal(await dumpSchema(db.pool), expected);
    });
  }
});
