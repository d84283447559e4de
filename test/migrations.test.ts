/** Migrations: idempotent, safe when instances start together, refuse an unknown past, never drift. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pg from 'pg';
import { centralMigrations } from '../src/central/migrations.ts';
import { createPool } from '../src/platform/db.ts';
import { loadMigrations, migrate } from '../src/platform/migrate.ts';
import { edgeMigrations } from '../src/edge/migrations.ts';
import { SCHEMA_VERSION } from '../src/contract/wire.ts';
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
      dataModelVersion: migrations.at(-1)!.dataModelVersion,
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

  it('take in every data-model version, in order, and end at SCHEMA_VERSION', async () => {
    for (const migrations of [await centralMigrations(), await edgeMigrations()]) {
      const steps = migrations.filter(
        (m, i) => m.dataModelVersion !== (migrations[i - 1]?.dataModelVersion ?? 0),
      );
      assert.deepEqual(
        steps.map((m) => m.dataModelVersion),
        Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
      );
      assert.equal(migrations.at(-1)!.dataModelVersion, SCHEMA_VERSION);
    }
    // Both services apply the data model's own text, not copies of it.
    const v1 = await readFile(
      new URL('../src/contract/migrations/v1_data_model.sql', import.meta.url),
      'utf8',
    );
    assert.equal((await centralMigrations())[0]!.sql, v1);
    assert.equal((await edgeMigrations())[0]!.sql, v1);
  });

  it('number each service by itself, so a second data-model version fits both', async () => {
    const root = await mkdtemp(join(tmpdir(), 'dbupdate-migrations-'));
    try {
      const write = (path: string, text: string) => writeFile(join(root, path), text);
      await write('v1_model.sql', 'CREATE TABLE a (x int);');
      await write('v2_more.sql', 'ALTER TABLE a ADD COLUMN y int;');
      await mkdir(join(root, 'svc'));
      await write('svc/0001_model.sql', '-- dbupdate:data-model v1\n');
      await write('svc/0002_own.sql', 'CREATE TABLE own (x int);');
      await write('svc/0003_model_v2.sql', '-- dbupdate:data-model v2\n');
      const list = await loadMigrations(join(root, 'svc'), root);
      assert.deepEqual(
        list.map((m) => [m.id, m.dataModelVersion, m.sql]),
        [
          [1, 1, 'CREATE TABLE a (x int);'],
          [2, 1, 'CREATE TABLE own (x int);'],
          [3, 2, 'ALTER TABLE a ADD COLUMN y int;'],
        ],
      );
      // A version taken in twice, skipped, or unknown is refused when the code loads.
      await write('svc/0004_again.sql', '-- dbupdate:data-model v2\n');
      await assert.rejects(
        loadMigrations(join(root, 'svc'), root),
        /takes in data-model v2; the next one to take in is v3/,
      );
      await rm(join(root, 'svc/0004_again.sql'));
      await write('v4_gap.sql', 'SELECT 1;');
      await assert.rejects(loadMigrations(join(root, 'svc'), root), /without gaps; found v4/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
