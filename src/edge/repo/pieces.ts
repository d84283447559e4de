/** Staged pieces (received, verified, not yet loaded) and the pieces of the tables as held. */
import type { Readable } from 'node:stream';
import { to as copyTo } from 'pg-copy-streams';
import { KEY_RANGE_SQL, keyRangeParams, keyRangeSql, type Piece } from '../../contract/pieces.ts';
import { columnList, orderBy, type TableDef } from '../../contract/tables.ts';
import type { PoolClient, Queryable } from '../../platform/db.ts';

export interface StagedPiece {
  id: string;
  table: string;
  rows: number;
  data: Buffer;
}

export async function stagePieces(db: Queryable, pieces: readonly StagedPiece[]): Promise<void> {
  if (pieces.length === 0) return;
  await db.query(
    `INSERT INTO edge_staged_pieces (id, table_name, row_count, data)
     SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bytea[])
     ON CONFLICT (id) DO NOTHING`,
    [
      pieces.map((p) => p.id),
      pieces.map((p) => p.table),
      pieces.map((p) => p.rows),
      pieces.map((p) => p.data),
    ],
  );
}

/** Which of `ids` are staged. */
export async function stagedAmong(db: Queryable, ids: readonly string[]): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>(
    'SELECT id FROM edge_staged_pieces WHERE id = ANY($1::text[])',
    [ids],
  );
  return new Set(rows.map((r) => r.id));
}

export async function readStaged(db: Queryable, ids: readonly string[]): Promise<Map<string, Buffer>> {
  const { rows } = await db.query<{ id: string; data: Buffer }>(
    'SELECT id, data FROM edge_staged_pieces WHERE id = ANY($1::text[])',
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.data]));
}

/** Keeps only the staged pieces in `keep`: staging never holds more than one manifest's pieces. */
export async function pruneStaged(db: Queryable, keep: readonly string[]): Promise<number> {
  const { rowCount } = await db.query('DELETE FROM edge_staged_pieces WHERE NOT (id = ANY($1::text[]))', [
    keep,
  ]);
  return rowCount ?? 0;
}

export async function deleteStaged(db: Queryable, ids: readonly string[]): Promise<void> {
  await db.query('DELETE FROM edge_staged_pieces WHERE id = ANY($1::text[])', [ids]);
}

export interface HeldPieces {
  tableSha256: string;
  pieces: Piece[];
}

/** The held pieces of each table, for one data-model version. */
export async function heldPieces(db: Queryable, schemaVersion: number): Promise<Map<string, HeldPieces>> {
  const { rows } = await db.query<{
    table_name: string;
    table_sha256: string;
    id: string;
    row_count: number;
    last_key: string;
  }>(
    `SELECT table_name, table_sha256, id, row_count, last_key FROM edge_held_pieces
      WHERE schema_version = $1::int ORDER BY table_name, ord`,
    [schemaVersion],
  );
  const out = new Map<string, HeldPieces>();
  for (const r of rows) {
    let held = out.get(r.table_name);
    if (!held) out.set(r.table_name, (held = { tableSha256: r.table_sha256, pieces: [] }));
    held.pieces.push({ id: r.id, rows: r.row_count, last: r.last_key });
  }
  return out;
}

/** In the load transaction: the pieces `table` holds once it commits. */
export async function replaceHeldPieces(
  tx: PoolClient,
  table: string,
  schemaVersion: number,
  tableSha256: string,
  pieces: readonly Piece[],
): Promise<void> {
  await tx.query('DELETE FROM edge_held_pieces WHERE table_name = $1::text', [table]);
  await tx.query(
    `INSERT INTO edge_held_pieces (table_name, ord, schema_version, table_sha256, id, row_count, last_key)
     SELECT $1::text, o - 1, $2::int, $3::text, id, n, k
       FROM unnest($4::text[], $5::int[], $6::text[]) WITH ORDINALITY AS p(id, n, k, o)`,
    [
      table,
      schemaVersion,
      tableSha256,
      pieces.map((p) => p.id),
      pieces.map((p) => p.rows),
      pieces.map((p) => p.last),
    ],
  );
}

/** The key columns against a tab-joined key, as bind parameters from `first`. */
function keyParams(def: TableDef, key: string, first: number): { sql: string; values: string[] } {
  const values = key.split('\t');
  if (values.length !== def.primaryKey.length) throw new Error(`${def.name}: key ${key} has the wrong width`);
  return { sql: `(${values.map((_, i) => `$${first + i}::uuid`).join(', ')})`, values };
}

/**
 * Deletes the rows with keys in (after, last]; `last` null: no upper bound. Returns the
 * number deleted. Keys come from the signed manifest and were checked to be uuids.
 */
export async function deleteKeyRange(
  tx: PoolClient,
  def: TableDef,
  after: string | null,
  last: string | null,
): Promise<number> {
  const lower = after === null ? undefined : keyParams(def, after, 1);
  const upper = last === null ? undefined : keyParams(def, last, (lower?.values.length ?? 0) + 1);
  const where = [
    lower && `(${orderBy(def)}) > ${lower.sql}`,
    upper && `(${orderBy(def)}) <= ${upper.sql}`,
  ].filter(Boolean);
  const { rowCount } = await tx.query(
    `DELETE FROM "${def.name}"${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''}`,
    [...(lower?.values ?? []), ...(upper?.values ?? [])],
  );
  return rowCount ?? 0;
}

/**
 * In the load transaction: the rows with keys in (after, last], in key order, as COPY text:
 * the bytes of the pieces they were loaded from, if the session's settings are the load's.
 */
export async function copyKeyRange(
  tx: PoolClient,
  def: TableDef,
  after: string | null,
  last: string,
): Promise<Readable> {
  await tx.query(KEY_RANGE_SQL, keyRangeParams(after, last));
  return tx.query(
    copyTo(
      `COPY (SELECT ${columnList(def)} FROM "${def.name}" WHERE ${keyRangeSql(def, after)} ORDER BY ${orderBy(def)}) TO STDOUT`,
    ),
  );
}
