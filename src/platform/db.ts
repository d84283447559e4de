/**
 * PostgreSQL access. Pools are created by the service that owns them and passed
 * down; repository functions take a client (or pool) as their first argument.
 */
import pg from 'pg';

export type Queryable = pg.Pool | pg.PoolClient | pg.Client;
export type { PoolClient, Pool } from 'pg';

/**
 * A statement that runs many times a second (the audit batches): named, so each pooled
 * connection parses it once and PostgreSQL can keep its plan, instead of parsing and
 * planning it on every call. Its text must never vary (arrays carry the batch). Only for
 * statements whose generic plan is as good as a custom one: after five runs PostgreSQL may
 * keep a generic plan, which cannot see an array's length, and for a join of `unnest($1)`
 * with a large table (the outcome UPDATEs, the ack insert, the header lookup of acks) that
 * plan scans the table; those measured six to eight times slower named, so they stay unnamed.
 */
export function prepared(name: string, text: string, values: unknown[]): pg.QueryConfig {
  return { name, text, values };
}

export function createPool(
  connectionString: string,
  options: { max?: number; applicationName: string },
): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
  });
  // A client losing its server (restart, network) must not crash the process: an idle
  // one is dropped by the pool, a busy one's error reaches its caller through the query.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/** Runs `work` in a transaction on its own client; the client is destroyed if the work broke it. */
export async function withTransaction<T>(
  pool: pg.Pool,
  begin: string,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query(begin);
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackErr) {
      broken = rollbackErr as Error;
    }
    throw err;
  } finally {
    client.release(broken);
  }
}

/** `url` with its database replaced by `name`. */
export function databaseUrl(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}
