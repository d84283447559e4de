import { fileURLToPath } from 'node:url';
import { DATA_MODEL_DIR } from '../contract/data-model.ts';
import type { Pool } from '../platform/db.ts';
import { AppError } from '../platform/errors.ts';
import type { Logger } from '../platform/logger.ts';
import { loadMigrations, migrate, type Migration, type MigrateResult } from '../platform/migrate.ts';
import { grantReader } from './repo/tables.ts';

/** Edge's migrations, the shared data model's versions taken in where they are named. */
export const EDGE_MIGRATION_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

export function edgeMigrations(): Promise<Migration[]> {
  return loadMigrations(EDGE_MIGRATION_DIR, DATA_MODEL_DIR);
}

/** The edge database made ready: migrated, then the reader role (if any) granted the data tables. */
export async function prepareEdgeDatabase(
  pool: Pool,
  readerRole: string | undefined,
  log?: Logger,
  migrations?: readonly Migration[],
): Promise<MigrateResult> {
  const result = await migrate(pool, migrations ?? (await edgeMigrations()), log);
  if (readerRole === undefined) return result;
  try {
    await grantReader(pool, readerRole);
  } catch (err) {
    if ((err as { code?: string }).code !== '42704') throw err;
    throw new AppError(
      'CONFIG_INVALID',
      `EDGE_READER_ROLE names ${readerRole}, which is not a role of this server: create it first (deploy/edge/reader-role.sql)`,
      { cause: err },
    );
  }
  log?.info({ event: 'reader.grant', role: readerRole }, `${readerRole} may read the data tables`);
  return result;
}
