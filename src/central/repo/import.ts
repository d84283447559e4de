/**
 * Loading an operator's own data: a CSV streamed by COPY into a temporary stage, then
 * upserted by primary key. A row whose values did not change is left alone (its
 * updated_at and its devices' scope versions with it), so re-importing the same export
 * wakes no device.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import type { PoolClient } from '../../platform/db.ts';
import type { TableDef } from '../../contract/tables.ts';

const STAMPS = ['created_at', 'updated_at'];
const quoted = (names: readonly string[]) => names.map((n) => `"${n}"`).join(', ');

/** Streams `csv` (header line first, naming `columns`) into a stage dropped at commit. */
export async function stageCsv(
  tx: PoolClient,
  def: TableDef,
  columns: readonly string[],
  csv: Readable,
): Promise<string> {
  const stage = `import_${def.name}`;
  // CREATE … AS … WITH NO DATA keeps the types but not NOT NULL: the stamps may be absent.
  await tx.query(
    `CREATE TEMP TABLE "${stage}" ON COMMIT DROP AS SELECT ${quoted(columns)} FROM "${def.name}" WITH NO DATA`,
  );
  await pipeline(
    csv,
    tx.query(copyFrom(`COPY "${stage}" (${quoted(columns)}) FROM STDIN WITH (FORMAT csv, HEADER true)`)),
  );
  return stage;
}

export interface UpsertCounts {
  inserted: number;
  updated: number;
}

/** The staged rows into the table: new keys inserted, changed rows updated, others kept. */
export async function upsertStaged(
  tx: PoolClient,
  def: TableDef,
  stage: string,
  columns: readonly string[],
): Promise<UpsertCounts> {
  const missingStamps = STAMPS.filter((s) => def.columns.some((c) => c.name === s) && !columns.includes(s));
  const values = [...columns.map((c) => `s."${c}"`), ...missingStamps.map(() => 'now()')];
  const changing = columns.filter((c) => !def.primaryKey.includes(c) && !STAMPS.includes(c));
  const touched = def.columns.some((c) => c.name === 'updated_at') ? [...changing, 'updated_at'] : changing;
  const onConflict =
    changing.length === 0
      ? 'DO NOTHING'
      : `DO UPDATE SET ${touched.map((c) => `"${c}" = EXCLUDED."${c}"`).join(', ')}
         WHERE (${changing.map((c) => `t."${c}"`).join(', ')}, NULL) IS DISTINCT FROM
               (${changing.map((c) => `EXCLUDED."${c}"`).join(', ')}, NULL)`;
  const { rows } = await tx.query<{ inserted: boolean }>(
    `INSERT INTO "${def.name}" AS t (${quoted([...columns, ...missingStamps])})
     SELECT ${values.join(', ')} FROM "${stage}" s
     ON CONFLICT (${quoted(def.primaryKey)}) ${onConflict}
     RETURNING (xmax = 0) AS inserted`,
  );
  const inserted = rows.filter((r) => r.inserted).length;
  return { inserted, updated: rows.length - inserted };
}
