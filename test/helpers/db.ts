/** A fresh database per test file, cloned from a migrated template. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createPool } from '../../src/platform/db.ts';
import { databaseUrl } from '../../src/platform/db.ts';
import { TEMPLATES, type TemplateKind } from './templates.ts';

export interface TestDatabase {
  url: string;
  pool: pg.Pool;
  [Symbol.asyncDispose](): Promise<void>;
}

function adminUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error('TEST_DATABASE_URL is not set: run the tests with `npm test`');
  return url;
}

/** `empty`: a database with no migration applied, as a new server gives one. */
export async function createTestDatabase(kind: TemplateKind | 'empty'): Promise<TestDatabase> {
  const name = `t_${kind}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(
      `CREATE DATABASE "${name}" TEMPLATE "${kind === 'empty' ? 'template0' : TEMPLATES[kind]}"`,
    );
  } finally {
    await admin.end();
  }
  const url = databaseUrl(adminUrl(), name);
  const pool = createPool(url, { max: 10, applicationName: `test-${kind}` });
  return {
    url,
    pool,
    async [Symbol.asyncDispose]() {
      await pool.end();
      const dropper = new pg.Client({ connectionString: adminUrl() });
      await dropper.connect();
      await dropper.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).finally(() => dropper.end());
    },
  };
}
