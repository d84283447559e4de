/**
 * The engines a scaled-out Central runs on, from Debian's packages, started natively for
 * the tests and the scale-out bench (no container engine here): a PostgreSQL primary with
 * a streaming replica made by pg_basebackup, Redis, and haproxy in front of Centrals. Each
 * binds loopback only and is stopped by the caller. PostgreSQL refuses to run as root, so
 * as root its processes run as Debian's `postgres` user in a folder that user owns.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/platform/embedded.ts';

export const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** What is missing to run the engines here, or undefined when all are installed. */
export function missingEngines(): string | undefined {
  const need: [string, string][] = [
    [join(PG_BIN, 'pg_basebackup'), 'postgresql-15'],
    ['redis-server', 'redis-server'],
    ['haproxy', 'haproxy'],
  ];
  const missing = need
    .filter(([bin]) => spawnSync(bin, ['--version']).error !== undefined)
    .map(([, pkg]) => pkg);
  return missing.length > 0 ? `apt-get install ${missing.join(' ')}` : undefined;
}

/** What is missing to run startPostgres here, or undefined when Debian's PostgreSQL 15 is installed. */
export function missingPostgres(): string | undefined {
  return spawnSync(join(PG_BIN, 'initdb'), ['--version']).error === undefined
    ? undefined
    : 'apt-get install postgresql-15';
}

/** uid and gid to run PostgreSQL as: Debian's `postgres` user when we are root. */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) =>
    Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  return { uid: id('-u'), gid: id('-g') };
}

function run(bin: string, args: string[], as: { uid: number; gid: number } | undefined): void {
  const r = spawnSync(join(PG_BIN, bin), args, { encoding: 'utf8', ...(as ?? {}), cwd: tmpdir() });
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')}: ${r.stderr || r.stdout || r.error}`);
}

export interface PgNode {
  url: string;
  port: number;
  dataDir: string;
  start(): void;
  stop(mode?: 'fast' | 'immediate'): void;
}

export interface ReplicatedPostgres {
  primary: PgNode;
  replica: PgNode;
  /** Stops both and removes their folder. */
  close(): void;
}

function pgNode(
  dataDir: string,
  port: number,
  as: { uid: number; gid: number } | undefined,
  log: string,
): PgNode {
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    start: () => run('pg_ctl', ['-D', dataDir, '-l', log, '-w', '-t', '60', 'start'], as),
    stop: (mode = 'fast') => run('pg_ctl', ['-D', dataDir, '-m', mode, '-w', 'stop'], as),
  };
}

/** A primary (trust auth on loopback, replication allowed) and its streaming replica. */
export async function startReplicatedPostgres(): Promise<ReplicatedPostgres> {
  const as = postgresUser();
  const dir = mkdtempSync(join(tmpdir(), 'dbupdate-replica-'));
  if (as) chownSync(dir, as.uid, as.gid);
  const [primaryPort, replicaPort] = [await freePort(), await freePort()];
  const primary = pgNode(join(dir, 'primary'), primaryPort, as, join(dir, 'primary.log'));
  const replica = pgNode(join(dir, 'replica'), replicaPort, as, join(dir, 'replica.log'));
  try {
    run(
      'initdb',
      ['-D', primary.dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8'],
      as,
    );
    const settings = (port: number) =>
      `\nport = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${dir}'\n` +
      `wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\nhot_standby_feedback = on\nfsync = off\n`;
    appendFileSync(join(primary.dataDir, 'postgresql.conf'), settings(primaryPort));
    primary.start();
    run(
      'pg_basebackup',
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(primaryPort),
        '-U',
        'postgres',
        '-D',
        replica.dataDir,
        '-R',
        '-X',
        'stream',
      ],
      as,
    );
    appendFileSync(join(replica.dataDir, 'postgresql.conf'), settings(replicaPort));
    replica.start();
  } catch (err) {
    for (const node of [replica, primary]) {
      try {
        node.stop('immediate');
      } catch {
        // not started
      }
    }
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    primary,
    replica,
    close() {
      for (const node of [replica, primary]) {
        try {
          node.stop('immediate');
        } catch {
          // already stopped
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Engine {
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

function started(
  child: ChildProcess,
  url: string,
  ready: RegExp | undefined,
  cleanup?: () => void,
): Promise<Engine> {
  return new Promise((resolve, reject) => {
    let out = '';
    const stop = () =>
      new Promise<void>((r) => {
        if (child.exitCode !== null || child.signalCode !== null) return r(cleanup?.());
        child.once('exit', () => r(cleanup?.()));
        child.kill('SIGTERM');
      });
    const engine = { url, process: child, stop };
    const timer = setTimeout(() => reject(new Error(`did not start in 10 s: ${out}`)), 10_000);
    const onData = (c: Buffer) => {
      out += c.toString();
      if (ready?.test(out)) {
        clearTimeout(timer);
        resolve(engine);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}: ${out}`));
    });
    if (!ready) {
      clearTimeout(timer);
      setTimeout(() => resolve(engine), 300);
    }
  });
}

/** redis-server on loopback, nothing persisted. */
export async function startRedis(): Promise<Engine> {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return started(child, `redis://127.0.0.1:${port}`, /Ready to accept connections/);
}

/**
 * haproxy over `backends` (host:port), each checked by GET /readyz. A device sticks to one
 * Central by its credential (consistent hashing), as the stack's terminator does (deploy/central/haproxy.cfg), so its
 * digests stay in that Central's cache; `roundrobin` spreads requests regardless.
 */
export async function startHaproxy(
  backends: string[],
  balance: 'device' | 'roundrobin' = 'device',
): Promise<Engine & { port: number }> {
  const port = await freePort();
  // Two descriptors a proxied connection, within this process's limit.
  const fds = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim()) || 1024;
  const maxconn = Math.max(100, Math.min(8000, Math.floor((fds - 100) / 2)));
  const dir = mkdtempSync(join(tmpdir(), 'dbupdate-haproxy-'));
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(
    config,
    [
      'global',
      `  maxconn ${maxconn}`,
      'defaults',
      '  mode http',
      `  maxconn ${maxconn}`,
      // An idle kept-alive device connection is closed soon: a fleet would otherwise hold them all.
      '  timeout http-keep-alive 5s',
      '  timeout connect 1s',
      '  timeout client 60s',
      '  timeout server 60s',
      '  retries 2',
      '  option redispatch',
      'frontend central',
      `  bind 127.0.0.1:${port}`,
      '  default_backend centrals',
      'backend centrals',
      ...(balance === 'device'
        ? ['  balance hdr(authorization)', '  hash-type consistent']
        : ['  balance roundrobin']),
      '  option httpchk GET /readyz',
      // A Central busy answering is not down: the check waits 2 s, and three misses take it out.
      '  timeout check 2s',
      '  default-server inter 500ms fall 3 rise 2',
      ...backends.map((b, i) => `  server central${i + 1} ${b} check`),
      '',
    ].join('\n'),
  );
  const child = spawn('haproxy', ['-db', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const engine = await started(child, `http://127.0.0.1:${port}`, undefined, () =>
    rmSync(dir, { recursive: true, force: true }),
  );
  return { ...engine, port };
}

/** One PostgreSQL 15 server (Debian's, the oldest version supported), trust auth on loopback. */
export async function startPostgres(): Promise<{ node: PgNode; close(): void }> {
  const as = postgresUser();
  const dir = mkdtempSync(join(tmpdir(), 'dbupdate-pg15-'));
  if (as) chownSync(dir, as.uid, as.gid);
  const port = await freePort();
  const node = pgNode(join(dir, 'data'), port, as, join(dir, 'server.log'));
  const close = () => {
    try {
      node.stop('immediate');
    } catch {
      // not started, or already stopped
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    run(
      'initdb',
      ['-D', node.dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8'],
      as,
    );
    appendFileSync(
      join(node.dataDir, 'postgresql.conf'),
      `\nport = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${dir}'\nfsync = off\n`,
    );
    node.start();
  } catch (err) {
    close();
    throw err;
  }
  return { node, close };
}
