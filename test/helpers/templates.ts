/** Template databases, migrated once per run and cloned per test file. */
import pg from 'pg';
import { databaseUrl } from '../../src/platform/db.ts';
import { centralMigrations } from '../../src/central/migrations.ts';
import { edgeMigrations } from '../../src/edge/migrations.ts';
import { migrate, type Migration } from '../../src/platform/migrate.ts';

export const TEMPLATES = { central: 'dbupdate_tpl_central', edge: 'dbupdate_tpl_edge' } as const;
export type TemplateKind = keyof typeof TEMPLATES;

const MIGRATIONS: Record<TemplateKind, () => Promise<Migration[]>> = {
  central: centralMigrations,
  edge: edgeMigrations,
};

export async function prepareTemplates(admin: pg.Client, adminUrl: string): Promise<void> {
  for (const [kind, name] of Object.entries(TEMPLATES) as [TemplateKind, string][]) {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${name}"`);
    const pool = new pg.Pool({ connectionString: databaseUrl(adminUrl, name), max: 2 });
    try {
      await migrate(pool, await MIGRATIONS[kind]());
    } finally {
      await pool.end();
    }
  }
}
