import { fileURLToPath } from 'node:url';
import { DATA_MODEL_DIR } from '../contract/data-model.ts';
import { loadMigrations, type Migration } from '../platform/migrate.ts';

/** Central's migrations, the shared data model's versions taken in where they are named. */
export const CENTRAL_MIGRATION_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

export function centralMigrations(): Promise<Migration[]> {
  return loadMigrations(CENTRAL_MIGRATION_DIR, DATA_MODEL_DIR);
}
