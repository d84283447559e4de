/** Edge pieces over a test database, talking to a Central URL over real HTTP. */
import pino from 'pino';
import { loadEdgeConfig, type EdgeConfig } from '../../src/edge/config.ts';
import { createSyncer } from '../../src/edge/syncer.ts';
import type { Syncer } from '../../src/edge/sync/run.ts';
import { columnList, orderBy, TABLES, type TableDef } from '../../src/contract/tables.ts';
import { scopeSelectSql, setScopeAndReadVersion } from '../../src/central/sync/repo/scope.ts';
import { findDeviceByMac } from '../../src/central/sync/repo/devices.ts';
import type { Pool, PoolClient } from '../../src/platform/db.ts';
import type { TestDatabase } from './db.ts';
import { TEST_KEYS } from './keys.ts';

export const quietLog = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export function edgeConfig(
  db: TestDatabase,
  centralUrl: string,
  mac: string,
  token: string,
  env: Record<string, string> = {},
): EdgeConfig {
  return loadEdgeConfig({
    EDGE_DATABASE_URL: db.url,
    CENTRAL_URL: centralUrl,
    DEVICE_MAC: mac,
    ...(token ? { DEVICE_TOKEN: token } : {}),
    HTTP_RETRY_ATTEMPTS: '1',
    HTTP_STALL_TIMEOUT_SECONDS: '10',
    MANIFEST_PUBLIC_KEYS: TEST_KEYS.publicKey,
    ...env,
  });
}

export function testSyncer(
  db: TestDatabase,
  centralUrl: string,
  mac: string,
  token: string,
  env: Record<string, string> = {},
): Syncer {
  return createSyncer(edgeConfig(db, centralUrl, mac, token, env), db.pool, quietLog, { initialDelayMs: 10 });
}

/** Every row of every table as PostgreSQL's record text (NULL and JSON null stay distinct). */
export async function edgeRows(
  pool: Pool,
  tables: readonly TableDef[] = TABLES,
): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const def of tables) {
    const { rows } = await pool.query<{ r: string }>(
      `SELECT x::text AS r FROM (SELECT ${columnList(def)} FROM "${def.name}" ORDER BY ${orderBy(def)}) x`,
    );
    out[def.name] = rows.map((r) => r.r);
  }
  return out;
}

/** The same, for a device's scope in Central. */
export async function centralScopeRows(
  pool: Pool,
  mac: string,
  tables: readonly TableDef[] = TABLES,
): Promise<Record<string, string[]>> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const device = await findDeviceByMac(client, mac);
    if (!device) throw new Error(`no device ${mac}`);
    await setScopeAndReadVersion(client, device);
    const out: Record<string, string[]> = {};
    for (const def of tables) {
      const { rows } = await client.query<{ r: string }>(
        `SELECT x::text AS r FROM (${scopeSelectSql(def)}) x`,
      );
      out[def.name] = rows.map((r) => r.r);
    }
    await client.query('COMMIT');
    return out;
  } finally {
    client.release();
  }
}

/** A short summary of the users and memberships an edge holds: equal fingerprints, equal data. */
export const FINGERPRINT_SQL = `SELECT (SELECT count(*) FROM users) || ':'
    || (SELECT md5(string_agg(id::text || updated_at::text, ',' ORDER BY id)) FROM users)
    || ':' || (SELECT count(*) FROM group_users) || ':' || (SELECT count(*) FROM devices) AS f`;

export async function fingerprint(pool: Pool | PoolClient): Promise<string> {
  const { rows } = await pool.query<{ f: string }>(FINGERPRINT_SQL);
  return rows[0]!.f;
}
