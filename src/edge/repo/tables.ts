/** The eight data tables on the edge: emptied and bulk-loaded inside the caller's transaction. */
import { from as copyFrom } from 'pg-copy-streams';
import type { Writable } from 'node:stream';
import { columnList, orderBy, TABLES, type TableDef } from '../../contract/tables.ts';
import type { PoolClient } from '../../platform/db.ts';

/**
 * DELETE rather than TRUNCATE: TRUNCATE's ACCESS EXCLUSIVE lock would make every
 * reader wait for the whole load; with DELETE, readers keep seeing the old rows
 * (MVCC) until the load commits, then the new ones. Children first, for the foreign keys.
 */
export async function emptyDataTables(client: PoolClient): Promise<void> {
  for (const def of [...TABLES].reverse()) await client.query(`DELETE FROM "${def.name}"`);
}

export function copyIntoTable(client: PoolClient, def: TableDef): Writable {
  return client.query(copyFrom(`COPY "${def.name}" (${columnList(def)}) FROM STDIN`));
}

export function localSelectSql(def: TableDef): string {
  return `SELECT ${columnList(def)} FROM "${def.name}" ORDER BY ${orderBy(def)}`;
}
