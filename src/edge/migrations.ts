import { fileURLToPath } from 'node:url';
import { loadMigrations, type Migration } from '../platform/migrate.ts';

/** Edge's migrations: the shared data model first, then the ledger. */
export const EDGE_MIGRATION_DIRS = [
  fileURLToPath(new URL('../contract/migrations/', import.meta.url)),
  fileURLToPath(new URL('./migrations/', import.meta.url)),
];

export function edgeMigrations(): Promise<Migration[]> {
  return loadMigrations(EDGE_MIGRATION_DIRS);
}
