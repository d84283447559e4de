/** The eight data tables on the edge: emptied and bulk-loaded inside the caller's transaction. */
import { from as copyFrom } from 'pg-copy-streams';
import type { Writable } from 'node:stream';
import { columnList, orderBy, TABLES, type TableDef } from '../../contract/tables.ts';
import type { Pool, PoolClient } from '../../platform/db.ts';

/**
 * DELETE rather than TRUNCATE: TRUNCATE's ACCESS EXCLUSIVE lock would make every
 * reader wait for the whole load; with DELETE, readers keep seeing the old rows
 * (MVCC) until the load commits, then the new ones. Children first, for the foreign keys.
 */
export async function emptyDataTables(client: PoolClient): Promise<void> {
  for (const def of [...TABLES].reverse()) await client.query(`DELETE FROM "${def.name}"`);
}

export async function emptyTable(client: PoolClient, def: TableDef): Promise<void> {
  await client.query(`DELETE FROM "${def.name}"`);
}

export function copyIntoTable(client: PoolClient, def: TableDef): Writable {
  return client.query(copyFrom(`COPY "${def.name}" (${columnList(def)}) FROM STDIN`));
}

export function localSelectSql(def: TableDef): string {
  return `SELECT ${columnList(def)} FROM "${def.name}" ORDER BY ${orderBy(def)}`;
}

/**
 * How this session may load a table on its own (patch its changed pieces, or reload it while
 * others are kept), fastest first:
 *
 * | mode       | who                                                           | the keys                         |
 * |------------|---------------------------------------------------------------|----------------------------------|
 * | `replica`  | a superuser, or a role granted SET on session_replication_role | triggers off, checked set-based at the end |
 * | `deferred` | the tables' owner (the README's role), keys deferrable (0005)  | deferred, checked at the load's end |
 * | `whole`    | neither (keys made immediate by hand)                         | every table emptied and reloaded |
 *
 * Only `whole` cannot apply deltas: the edge then warns at start and in /status.
 */
export type LoadMode = 'replica' | 'deferred' | 'whole';

export async function loadModeOf(client: PoolClient | Pool): Promise<LoadMode> {
  const { rows } = await client.query<{ replica: boolean; deferrable: boolean }>(
    `SELECT current_setting('is_superuser') = 'on'
              OR has_parameter_privilege('session_replication_role', 'SET') AS replica,
            coalesce((SELECT bool_and(condeferrable) FROM pg_constraint
                       WHERE contype = 'f' AND conrelid::regclass::text = ANY($1::text[])), true) AS deferrable`,
    [TABLES.map((t) => t.name)],
  );
  const [row] = rows;
  return row?.replica ? 'replica' : row?.deferrable ? 'deferred' : 'whole';
}

/** Foreign keys checked at the end of the transaction, or at once again (which checks what was deferred). */
export async function deferKeys(client: PoolClient, deferred: boolean): Promise<void> {
  await client.query(`SET CONSTRAINTS ALL ${deferred ? 'DEFERRED' : 'IMMEDIATE'}`);
}

/**
 * Turns every ordinary trigger off or on for the rest of the transaction (`replica` fires
 * none but ENABLE REPLICA/ALWAYS ones; on the edge's data tables the only triggers are the
 * foreign keys'). Off, the load skips one index lookup per row and per key, as pg_restore
 * does; the keys are then checked set-based by checkForeignKeys before commit.
 */
export async function setTriggers(client: PoolClient, on: boolean): Promise<void> {
  await client.query(`SET LOCAL session_replication_role = ${on ? 'origin' : 'replica'}`);
}

/** Every foreign key of the data tables, checked with one anti-join each; returns the violated ones. */
export async function checkForeignKeys(client: PoolClient): Promise<string[]> {
  const { rows: keys } = await client.query<{
    name: string;
    child: string;
    parent: string;
    cols: string[];
    refs: string[];
  }>(
    `SELECT c.conname AS name, c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent,
            ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS cols,
            ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                    JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) AS refs
       FROM pg_constraint c
      WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY($1::text[])
      ORDER BY c.conname`,
    [TABLES.map((t) => t.name)],
  );
  const violated: string[] = [];
  for (const key of keys) {
    const join = key.cols.map((col, i) => `p.${key.refs[i]} = c.${col}`).join(' AND ');
    const notNull = key.cols.map((col) => `c.${col} IS NOT NULL`).join(' AND ');
    const { rows } = await client.query(
      `SELECT 1 FROM ${key.child} c WHERE ${notNull} AND NOT EXISTS (SELECT 1 FROM ${key.parent} p WHERE ${join}) LIMIT 1`,
    );
    if (rows.length > 0) violated.push(key.name);
  }
  return violated;
}

/** This device's own row in the loaded data: what the manifest's filters must name. */
export async function findLocalDevice(
  db: PoolClient,
  mac: string,
): Promise<{ id: string; locationId: string } | undefined> {
  const { rows } = await db.query<{ id: string; locationId: string }>(
    'SELECT id::text AS id, location_id::text AS "locationId" FROM devices WHERE mac = $1::macaddr',
    [mac],
  );
  return rows[0];
}

/**
 * Lets `role` read the data tables and the news it checks notices against, and nothing else
 * of this service's (the ledger stays private); idempotent. The role name was checked against ReaderRoleSetting's pattern.
 */
export async function grantReader(client: PoolClient | Pool, role: string): Promise<void> {
  await client.query(`GRANT USAGE ON SCHEMA public TO "${role}"`);
  await client.query(
    `GRANT SELECT ON ${TABLES.map((t) => `"${t.name}"`).join(', ')}, dbupdate_news TO "${role}"`,
  );
}
