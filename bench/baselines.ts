/**
 * What a full sync is compared with: the raw COPY pipe (the physical limit of moving
 * the rows) and `pg_dump | pg_restore` (the obvious alternative a user would script).
 *
 * Debian's pg_dump (15 on this machine) refuses a newer server such as our embedded
 * PostgreSQL 17, so the pg_dump baseline runs on a cluster of pg_dump's own version,
 * started from Debian's server binaries: the device's scope is copied there first (not
 * timed), then a raw pipe and pg_dump | pg_restore are timed between two databases of
 * that cluster, so their ratio compares like with like.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { findDeviceByMac } from '../src/central/sync/repo/devices.ts';
import { scopeSelectSql, setScopeAndReadVersion } from '../src/central/sync/repo/scope.ts';
import { columnList, TABLES, TABLE_NAMES, type TableDef } from '../src/contract/tables.ts';
import type { PoolClient } from '../src/platform/db.ts';
import { freePort, THROWAWAY_SERVER_SETTINGS } from '../src/platform/embedded.ts';

export interface PipeSource {
  url: string;
  /** Runs in the source transaction before the first COPY (e.g. setting the scope). */
  prepare?(client: pg.Client): Promise<void>;
  select(def: TableDef): string;
}

/** The device's scope on Central, as a pipe source. */
export function scopeSource(centralUrl: string, mac: string): PipeSource {
  return {
    url: centralUrl,
    async prepare(client) {
      const device = await findDeviceByMac(client, mac);
      await setScopeAndReadVersion(client as unknown as PoolClient, device!);
    },
    select: scopeSelectSql,
  };
}

/**
 * `COPY (…) TO STDOUT` → `COPY … FROM STDIN` table by table, in one transaction on each
 * side, nothing else: no hashing, no HTTP, no verification. Returns milliseconds.
 */
export async function rawPipe(source: PipeSource, targetUrl: string, triggers: boolean): Promise<number> {
  const from = new pg.Client({ connectionString: source.url });
  const to = new pg.Client({ connectionString: targetUrl });
  await Promise.all([from.connect(), to.connect()]);
  try {
    const t = performance.now();
    await from.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await to.query('BEGIN');
    // Without triggers: no foreign-key check at all, the bare cost of moving the rows.
    if (!triggers) await to.query('SET LOCAL session_replication_role = replica');
    await source.prepare?.(from);
    for (const def of TABLES) {
      await pipeline(
        from.query(copyTo(`COPY (${source.select(def)}) TO STDOUT`)),
        to.query(copyFrom(`COPY "${def.name}" (${columnList(def)}) FROM STDIN`)),
      );
    }
    await to.query('COMMIT');
    await from.query('COMMIT');
    return Math.round(performance.now() - t);
  } finally {
    await Promise.all([from.end(), to.end()]);
  }
}

export interface DumpBaseline {
  version: string;
  pipeMs: number;
  dumpMs: number;
  dumpBytes: number;
}

/** A throwaway cluster of pg_dump's own version, or undefined when there is none. */
export async function startDumpCluster(): Promise<
  { version: string; url(db: string): string; stop(): Promise<void> } | undefined
> {
  let version: string;
  try {
    version = /(\d+)\.\d+/.exec(execFileSync('pg_dump', ['--version'], { encoding: 'utf8' }))![1]!;
  } catch {
    return undefined;
  }
  const bin = `/usr/lib/postgresql/${version}/bin`;
  if (!existsSync(join(bin, 'postgres'))) return undefined;
  const dir = await mkdtemp(join(tmpdir(), 'dbupdate-bench-pg-dump-'));
  await chmod(dir, 0o777);
  // PostgreSQL refuses to run as root; as root, run it as Debian's postgres user.
  const as = (cmd: string, args: string[]) =>
    userInfo().uid === 0
      ? execFileSync('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args], { stdio: 'ignore' })
      : execFileSync(join(bin, cmd), args, { stdio: 'ignore' });
  const port = await freePort();
  const data = join(dir, 'data');
  as('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--encoding=UTF8', '--locale=C']);
  as('pg_ctl', [
    '-D',
    data,
    '-w',
    '-l',
    join(dir, 'log'),
    '-o',
    // The embedded clusters' settings, so both sides of the comparison run alike.
    [
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`,
      ...THROWAWAY_SERVER_SETTINGS.map((x) => `-c ${x}`),
    ].join(' '),
    'start',
  ]);
  return {
    version,
    url: (db) => `postgres://postgres@127.0.0.1:${port}/${db}`,
    async stop() {
      as('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function shell(command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-o', 'pipefail', '-c', command], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command}: ${code} ${err}`))));
  });
}

/** Times a raw pipe and pg_dump | pg_restore of the device's scope, both on pg_dump's own server version. */
export async function dumpBaseline(
  cluster: NonNullable<Awaited<ReturnType<typeof startDumpCluster>>>,
  scope: PipeSource,
  tag: string,
): Promise<DumpBaseline> {
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  const model = await readFile(
    new URL('../src/contract/migrations/v1_data_model.sql', import.meta.url),
    'utf8',
  );
  const [src, dst] = [`src_${tag}`, `dst_${tag}`];
  try {
    for (const db of [src, dst]) {
      await admin.query(`DROP DATABASE IF EXISTS ${db}`);
      await admin.query(`CREATE DATABASE ${db}`);
      const c = new pg.Client({ connectionString: cluster.url(db) });
      await c.connect();
      await c.query(model);
      await c.end();
    }
    await rawPipe(scope, cluster.url(src), true);
    const plain: PipeSource = {
      url: cluster.url(src),
      select: (def) => `SELECT ${columnList(def)} FROM "${def.name}"`,
    };
    const pipeMs = await rawPipe(plain, cluster.url(dst), true);
    const clean = new pg.Client({ connectionString: cluster.url(dst) });
    await clean.connect();
    await clean.query(`TRUNCATE ${TABLE_NAMES.join(', ')}`);
    const { port, hostname } = new URL(cluster.url(src));
    const conn = `-h ${hostname} -p ${port} -U postgres`;
    const tables = TABLE_NAMES.map((t) => `-t ${t}`).join(' ');
    const t = performance.now();
    // The custom format, data only, restored in one transaction with the foreign keys in force.
    await shell(
      `pg_dump ${conn} -d ${src} -Fc --data-only ${tables} | pg_restore ${conn} -d ${dst} --data-only --single-transaction`,
    );
    const dumpMs = Math.round(performance.now() - t);
    const restored = (await clean.query<{ n: string }>('SELECT count(*) AS n FROM users')).rows[0]!.n;
    await clean.end();
    const source = new pg.Client({ connectionString: cluster.url(src) });
    await source.connect();
    const expected = (await source.query<{ n: string }>('SELECT count(*) AS n FROM users')).rows[0]!.n;
    await source.end();
    if (restored !== expected) throw new Error(`pg_restore loaded ${restored} users of ${expected}`);
    const dumpBytes = Number(
      execFileSync(
        'bash',
        ['-o', 'pipefail', '-c', `pg_dump ${conn} -d ${src} -Fc --data-only ${tables} | wc -c`],
        { encoding: 'utf8' },
      ).trim(),
    );
    return { version: cluster.version, pipeMs, dumpMs, dumpBytes };
  } finally {
    await admin.end();
  }
}
