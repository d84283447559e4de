/**
 * Counts and hashes of tables as PostgreSQL holds them: COPY text out, canonical
 * lines in TableHasher. Central runs it over a device's scope, Edge over its local
 * tables; the caller applies COPY_SESSION_SETTINGS_SQL in its transaction first.
 */
import { to as copyTo } from 'pg-copy-streams';
import type pg from 'pg';
import { TableHasher, type TableDigest } from './canonical.ts';
import { TABLES, type TableDef } from './tables.ts';

export async function digestTables(
  client: pg.PoolClient | pg.Client,
  selectFor: (def: TableDef) => string,
  onLine?: (table: string, line: string) => void,
  tables: readonly TableDef[] = TABLES,
  /** Also shown each table's raw COPY text (Central cuts it into pieces on the way). */
  observe?: (def: TableDef) => ((chunk: Buffer) => void) | undefined,
): Promise<TableDigest[]> {
  const digests: TableDigest[] = [];
  for (const def of tables) {
    const hasher = new TableHasher(def, onLine && ((line) => onLine(def.name, line)));
    const seen = observe?.(def);
    for await (const chunk of client.query(copyTo(`COPY (${selectFor(def)}) TO STDOUT`))) {
      hasher.write(chunk as Buffer);
      seen?.(chunk as Buffer);
    }
    digests.push(hasher.digest());
  }
  return digests;
}
