/**
 * Loading an operator's own data: a CSV streamed by COPY into a temporary stage, then
 * upserted by primary key. A row whose values did not change is left alone (its
 * updated_at and its devices' scope versions with it), so re-importing the same export
 * wakes no device.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { PoolClient } from '../../../platform/db.ts';
import type { TableDef } from '../../../contract/tables.ts';

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
  // Each row's place in the file (COPY fills it in order), so a problem found later names its line.
  await tx.query(`ALTER TABLE "${stage}" ADD COLUMN ${LINE} bigint GENERATED ALWAYS AS IDENTITY`);
  await pipeline(
    csv,
    tx.query(copyFrom(`COPY "${stage}" (${quoted(columns)}) FROM STDIN WITH (FORMAT csv, HEADER true)`)),
  );
  return stage;
}

/** The stage's column of record numbers: record N is on the file's line N + 1 (the header is line 1). */
const LINE = '_dbupdate_record';

/** Keys that occur more than once in the stage: the first two lines of each, at most `limit`. */
export async function duplicateKeys(
  tx: PoolClient,
  def: TableDef,
  stage: string,
  limit = 10,
): Promise<{ key: string; first: number; again: number }[]> {
  const { rows } = await tx.query<{ key: string; lines: string[] }>(
    `SELECT concat_ws(', ', ${quoted(def.primaryKey)}) AS key, (array_agg(${LINE} + 1 ORDER BY ${LINE}))[1:2] AS lines
       FROM "${stage}" GROUP BY ${quoted(def.primaryKey)} HAVING count(*) > 1
      ORDER BY min(${LINE}) LIMIT $1::int`,
    [limit],
  );
  return rows.map((r) => ({ key: r.key, first: Number(r.lines[0]), again: Number(r.lines[1]) }));
}

/** The staged values of `columns` as COPY text, each line led by its file line number. */
export function stagedValues(tx: PoolClient, stage: string, columns: readonly string[]): Readable {
  return tx.query(
    copyTo(`COPY (SELECT ${LINE} + 1, ${quoted(columns)} FROM "${stage}" ORDER BY ${LINE}) TO STDOUT`),
  );
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

/**
 * The file line of the first staged row that breaks foreign key `constraint` of `def`'s table
 * (its parent is not there), read from the catalog by the constraint's name; undefined when none
 * does (the violation was another table's).
 */
export async function orphanLine(
  tx: PoolClient,
  def: TableDef,
  stage: string,
  constraint: string,
): Promise<number | undefined> {
  const { rows } = await tx.query<{ parent: string; cols: string[]; refs: string[] }>(
    `SELECT c.confrelid::regclass::text AS parent,
            array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS cols,
            array(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                    JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) AS refs
       FROM pg_constraint c WHERE c.contype = 'f' AND c.conname = $1 AND c.conrelid = $2::regclass`,
    [constraint, `"${def.name}"`],
  );
  const fk = rows[0];
  if (!fk) return undefined;
  const same = fk.cols.map((c, i) => `p.${quoted([fk.refs[i]!])} = s.${quoted([c])}`).join(' AND ');
  const { rows: lines } = await tx.query<{ line: string }>(
    `SELECT s.${LINE} + 1 AS line FROM "${stage}" s
      WHERE ${fk.cols.map((c) => `s.${quoted([c])} IS NOT NULL`).join(' AND ')}
        AND NOT EXISTS (SELECT 1 FROM ${fk.parent} p WHERE ${same})
      ORDER BY s.${LINE} LIMIT 1`,
  );
  return lines[0] ? Number(lines[0].line) : undefined;
}
