/**
 * Forward-only numbered SQL migrations (`NNNN_name.sql`), each in its own transaction,
 * applied under an advisory lock so that instances starting together take turns.
 * A database holding a migration this code does not know is newer than the code:
 * we refuse to run rather than guess.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { AppError } from './errors.ts';
import type { Logger } from './logger.ts';

export interface Migration {
  readonly id: number;
  readonly name: string;
  readonly sql: string;
  /** The data-model version the schema is at once this migration applied. */
  readonly dataModelVersion: number;
}

const FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;
/** A file of the shared data model: `v<N>_name.sql`, N running 1..SCHEMA_VERSION. */
const DATA_MODEL_FILE = /^v(\d+)_([a-z0-9_]+)\.sql$/;
/** The line by which a service's numbered migration takes in data-model version N. */
const INCLUDE = /^-- dbupdate:data-model v(\d+)$/m;
/** Arbitrary, fixed: one lock key per database for our migrations. */
const LOCK_KEY = 0x64627570; // "dbup"

/**
 * The shared data model's versions, by number. Both services take each version into
 * their own numbered sequence (each service numbers 1..n without gaps, by itself), so a
 * second data-model migration is one new `v2_…` file and one include line per service.
 */
export async function loadDataModel(dir: string): Promise<Map<number, string>> {
  const versions = new Map<number, string>();
  for (const file of (await readdir(dir)).sort()) {
    const match = DATA_MODEL_FILE.exec(file);
    if (match) versions.set(Number(match[1]), await readFile(join(dir, file), 'utf8'));
  }
  [...versions.keys()]
    .sort((a, b) => a - b)
    .forEach((v, i) => {
      if (v !== i + 1) throw new Error(`data-model versions must run v1..vN without gaps; found v${v}`);
    });
  return versions;
}

/** One service's migrations from its directory, with the data-model versions it includes in place. */
export async function loadMigrations(dir: string, dataModelDir: string): Promise<Migration[]> {
  const dataModel = await loadDataModel(dataModelDir);
  const list: Migration[] = [];
  let included = 0;
  for (const file of (await readdir(dir)).sort()) {
    const match = FILE.exec(file);
    if (!match) continue;
    const id = Number(match[1]);
    if (id !== list.length + 1)
      throw new Error(`migration numbers must run 1..n without gaps; found ${file}`);
    let sql = await readFile(join(dir, file), 'utf8');
    const include = INCLUDE.exec(sql);
    if (include) {
      const version = Number(include[1]);
      if (version !== included + 1 || !dataModel.has(version))
        throw new Error(
          `${file} takes in data-model v${version}; the next one to take in is v${included + 1}`,
        );
      sql = dataModel.get(version)!;
      included = version;
    }
    list.push({ id, name: file, sql, dataModelVersion: included });
  }
  return list;
}

export interface MigrateResult {
  applied: string[];
  current: number;
}

export async function migrate(
  pool: pg.Pool,
  migrations: readonly Migration[],
  log?: Logger,
): Promise<MigrateResult> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    // A database already at this code's migration needs no lock and no CREATE right, so a
    // least-privilege role (read the data, write the audit) can start the service.
    const before = await appliedMigrations(client);
    if (before && refuseUnknown(before, migrations) === migrations.length)
      return { applied: [], current: migrations.at(-1)?.id ?? 0 };
    await client.query("SET lock_timeout = '60s'");
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS dbupdate_migrations (
        id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      const rows = (await appliedMigrations(client)) ?? [];
      refuseUnknown(rows, migrations);
      const done = new Set(rows.map((r) => r.id));
      const applied: string[] = [];
      for (const m of migrations) {
        if (done.has(m.id)) continue;
        log?.info({ event: 'migration.start', migration: m.name }, `applying ${m.name}`);
        try {
          await client.query('BEGIN');
          // The row goes first: a concurrent runner without our lock fails on the key at once.
          await client.query('INSERT INTO dbupdate_migrations (id, name) VALUES ($1, $2)', [m.id, m.name]);
          await client.query(m.sql);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw new AppError('MIGRATION_FAILED', `${m.name}: ${(err as Error).message}`, { cause: err });
        }
        log?.info({ event: 'migration.finish', migration: m.name, outcome: 'success' }, `applied ${m.name}`);
        applied.push(m.name);
      }
      return { applied, current: migrations.at(-1)?.id ?? 0 };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch((err: Error) => {
        broken = err;
      });
    }
  } finally {
    client.release(broken);
  }
}

/** The migrations a database holds, or undefined when it has no bookkeeping table yet. */
async function appliedMigrations(client: pg.PoolClient): Promise<{ id: number; name: string }[] | undefined> {
  const { rows: exists } = await client.query<{ present: boolean }>(
    "SELECT to_regclass('dbupdate_migrations') IS NOT NULL AS present",
  );
  if (!exists[0]?.present) return undefined;
  const { rows } = await client.query<{ id: number; name: string }>(
    'SELECT id, name FROM dbupdate_migrations ORDER BY id',
  );
  return rows;
}

/** Throws on a migration this code does not know; returns how many of the code's are applied. */
function refuseUnknown(rows: { id: number; name: string }[], migrations: readonly Migration[]): number {
  const known = new Map(migrations.map((m) => [m.id, m]));
  const unknown = rows.filter((r) => known.get(r.id)?.name !== r.name);
  if (unknown.length > 0) {
    throw new AppError(
      'MIGRATION_UNKNOWN',
      `database has migrations this code does not know: ${unknown.map((r) => r.name).join(', ')}`,
    );
  }
  return rows.length;
}

/** The highest migration applied, or 0 when none (readiness checks compare it with the code's). */
export async function currentMigration(client: pg.Pool | pg.PoolClient): Promise<number> {
  const { rows } = await client.query<{ id: number | null }>(
    "SELECT CASE WHEN to_regclass('dbupdate_migrations') IS NULL THEN 0 ELSE (SELECT coalesce(max(id), 0) FROM dbupdate_migrations) END AS id",
  );
  return rows[0]?.id ?? 0;
}
