import { fileURLToPath } from 'node:url';
import { loadMigrations, type Migration } from '../platform/migrate.ts';

/** Central's migrations: the shared data model first, then Central's own. */
export const CENTRAL_MIGRATION_DIRS = [
  fileURLToPath(new URL('../contract/migrations/', import.meta.url)),
  fileURLToPath(new URL('./migrations/', import.meta.url)),
];

export function centralMigrations(): Promise<Migration[]> {
  return loadMigrations(CENTRAL_MIGRATION_DIRS);
}
