/**
 * `central import --dir DIR`: an operator's real companies, locations, groups, users,
 * areas and devices, from one CSV per table (`companies.csv`, …; a header line naming
 * the columns). Parents first, all in one transaction: a bad line anywhere is reported
 * with its file and line, and nothing is changed.
 */
import { createReadStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DATA_MODEL } from '../../contract/data-model.ts';
import type { TableDef } from '../../contract/tables.ts';
import { withTransaction, type Pool, type PoolClient } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import {
  duplicateKeys,
  orphanLine,
  stageCsv,
  stagedValues,
  upsertStaged,
  type UpsertCounts,
} from './repo/import.ts';
import { CanonicalError, RowCanonicalizer } from '../../contract/canonical.ts';

/** The tables an import writes: this release's. */
const TABLES = DATA_MODEL.tables;

export type ImportResult = Record<string, UpsertCounts>;

/** The header line's column names, checked against the table before any row is read. */
async function headerColumns(path: string, def: TableDef): Promise<string[]> {
  const file = await open(path);
  try {
    const { buffer, bytesRead } = await file.read(Buffer.alloc(4096), 0, 4096, 0);
    // A spreadsheet's export may begin with a byte-order mark; COPY skips the header line whole.
    const line =
      buffer
        .subarray(0, bytesRead)
        .toString('utf8')
        .replace(/^\uFEFF/, '')
        .split(/\r?\n/)[0] ?? '';
    const columns = line.split(',').map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
    const known = new Set(def.columns.map((c) => c.name));
    const unknown = columns.filter((c) => !known.has(c));
    if (unknown.length > 0 || new Set(columns).size !== columns.length)
      throw new AppError(
        'INVALID_INPUT',
        `${def.name}.csv line 1: columns must be distinct names of ${def.name} ` +
          `(${[...known].join(', ')}); ${unknown.length > 0 ? `unknown: ${unknown.join(', ')}` : 'a name repeats'}`,
      );
    const missing = def.primaryKey.filter((k) => !columns.includes(k));
    if (missing.length > 0)
      throw new AppError(
        'INVALID_INPUT',
        `${def.name}.csv line 1: the key column ${missing.join(', ')} is missing`,
      );
    return columns;
  } finally {
    await file.close();
  }
}

/**
 * What PostgreSQL accepts but the import must not: a key twice in one file (the upsert would
 * fail without saying where), and JSON that dbupdate's canonical form cannot carry (a number
 * beyond a double's range would make every snapshot of the rows' scope fail).
 */
async function checkStaged(tx: PoolClient, def: TableDef, stage: string, columns: string[]): Promise<void> {
  const file = `${def.name}.csv`;
  const [dup] = await duplicateKeys(tx, def, stage, 1);
  if (dup)
    throw new AppError(
      'INVALID_INPUT',
      `${file} line ${dup.again}: the key ${dup.key} again (first at line ${dup.first}); each row once; nothing was imported`,
    );
  const json = def.columns.filter((c) => c.type === 'jsonb' && columns.includes(c.name));
  if (json.length === 0) return;
  const rows = new RowCanonicalizer({
    name: def.name,
    columns: [{ name: 'line', type: 'bigint' }, ...json],
    primaryKey: [],
  });
  // The COPY is read to its end whatever it holds: a COPY left unread would keep the
  // connection busy, and the rollback that reports the bad line would never run.
  const decoder = new StringDecoder('utf8');
  let carry = '';
  let problem: string | undefined;
  for await (const chunk of stagedValues(
    tx,
    stage,
    json.map((c) => c.name),
  )) {
    if (problem) continue;
    const lines = (carry + decoder.write(chunk as Buffer)).split('\n');
    carry = lines.pop()!;
    for (const line of lines) {
      try {
        rows.line(line);
      } catch (err) {
        if (!(err instanceof CanonicalError)) throw err;
        problem = `${file} line ${line.slice(0, line.indexOf('\t'))}: ${err.message}`;
        break;
      }
    }
  }
  if (problem)
    throw new AppError(
      'INVALID_INPUT',
      `${problem}; JSON numbers must fit a double (write a larger one as a string); nothing was imported`,
    );
}

/** SQLSTATE of a row whose parent is not there. */
const FOREIGN_KEY_VIOLATION = '23503';

/**
 * The staged rows upserted; a row whose parent is not there is named by its file line (PostgreSQL
 * names only the key), found after rolling back to a savepoint that keeps the transaction usable.
 */
async function upsertNamingLines(
  tx: PoolClient,
  def: TableDef,
  stage: string,
  columns: readonly string[],
): Promise<UpsertCounts> {
  await tx.query('SAVEPOINT dbupdate_upsert');
  try {
    const counts = await upsertStaged(tx, def, stage, columns);
    await tx.query('RELEASE SAVEPOINT dbupdate_upsert');
    return counts;
  } catch (err) {
    const { code, constraint, message, detail } = err as {
      code?: unknown;
      constraint?: unknown;
      message: string;
      detail?: string;
    };
    if (code !== FOREIGN_KEY_VIOLATION || typeof constraint !== 'string') throw err;
    await tx.query('ROLLBACK TO SAVEPOINT dbupdate_upsert');
    const line = await orphanLine(tx, def, stage, constraint);
    throw new AppError(
      'INVALID_INPUT',
      `${def.name}.csv${line ? ` line ${line}` : ''}: ${message}${detail ? ` (${detail})` : ''}; nothing was imported`,
      { cause: err },
    );
  }
}

export async function importDirectory(pool: Pool, dir: string): Promise<ImportResult> {
  const files = new Set((await readdir(dir)).filter((f) => f.endsWith('.csv')));
  const strangers = [...files].filter((f) => !TABLES.some((t) => `${t.name}.csv` === f));
  if (strangers.length > 0)
    throw new AppError(
      'INVALID_INPUT',
      `${strangers.join(', ')}: not a table; the files are ${TABLES.map((t) => `${t.name}.csv`).join(', ')}`,
    );
  const present = TABLES.filter((t) => files.has(`${t.name}.csv`));
  if (present.length === 0) throw new AppError('INVALID_INPUT', `${dir} holds none of the tables' CSV files`);
  const headers = new Map<TableDef, string[]>();
  for (const def of present) headers.set(def, await headerColumns(join(dir, `${def.name}.csv`), def));
  return withTransaction(pool, 'BEGIN', async (tx) => {
    const result: ImportResult = {};
    for (const def of present) {
      const columns = headers.get(def)!;
      try {
        const stage = await stageCsv(tx, def, columns, createReadStream(join(dir, `${def.name}.csv`)));
        await checkStaged(tx, def, stage, columns);
        result[def.name] = await upsertNamingLines(tx, def, stage, columns);
      } catch (err) {
        // Only bad data is the file's fault (SQLSTATE classes 22 and 23); the rest is not.
        const sqlState = (err as { code?: unknown }).code;
        if (err instanceof AppError || typeof sqlState !== 'string' || !/^2[23]/.test(sqlState)) throw err;
        // PostgreSQL names the line (COPY … line N) or the key (a parent that is not there).
        const e = err as { message: string; where?: string; detail?: string };
        const at = /line (\d+)/.exec(e.where ?? '')?.[1];
        throw new AppError(
          'INVALID_INPUT',
          `${def.name}.csv${at ? ` line ${at}` : ''}: ${e.message}${e.detail ? ` (${e.detail})` : ''}; nothing was imported`,
          { cause: err },
        );
      }
    }
    return result;
  });
}
