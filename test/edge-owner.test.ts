/**
 * An edge whose database user owns its tables but is no superuser (the README's role), on
 * Debian's PostgreSQL 15, the oldest version supported: it patches only the changed pieces, as
 * a superuser edge does, with every foreign key still enforced (deferred to the load's end,
 * repo/tables.ts). Before, it silently emptied and reloaded all eight tables on every change.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { missingPostgres, startPostgres } from '../scripts/lib/engines.ts';
import { createPool, databaseUrl, type Pool } from '../src/platform/db.ts';
import { prepareEdgeDatabase } from '../src/edge/migrations.ts';
import { loadModeOf } from '../src/edge/repo/tables.ts';
import { startEdge } from '../src/edge/server.ts';
import { createSyncer } from '../src/edge/syncer.ts';
import type { SyncResult } from '../src/edge/model.ts';
import { seedOneScope, startCentral, type RunningCentral } from './helpers/central.ts';
import { capturedLog } from './helpers/log.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { centralScopeRows, edgeConfig, edgeRows, quietLog } from './helpers/edge.ts';

const missing = missingPostgres();
if (missing && process.env.CI) throw new Error(`Debian's PostgreSQL 15 is missing: ${missing}`);

describe('an edge whose user owns its tables but is no superuser', { skip: missing }, () => {
  let central: TestDatabase;
  let api: RunningCentral;
  let pg15: Awaited<ReturnType<typeof startPostgres>>;
  const pools: Pool[] = [];
  const urls = new Map<Pool, string>();
  let mac: string;
  let token: string;
  let owner: Pool;
  let superuser: Pool;

  /** A database on PostgreSQL 15 for `role`, migrated by that role itself, as the README has it. */
  async function edgeDatabase(name: string, role: string | undefined): Promise<Pool> {
    const admin = createPool(pg15.node.url, { max: 1, applicationName: 'test-admin' });
    try {
      if (role) await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'owner-password' NOSUPERUSER`);
      await admin.query(`CREATE DATABASE ${name}${role ? ` OWNER ${role}` : ''}`);
    } finally {
      await admin.end();
    }
    const url = new URL(databaseUrl(pg15.node.url, name));
    if (role) [url.username, url.password] = [role, 'owner-password'];
    const pool = createPool(url.href, { max: 3, applicationName: 'dbupdate-edge' });
    pools.push(pool);
    urls.set(pool, url.href);
    await prepareEdgeDatabase(pool, undefined);
    return pool;
  }

  const sync = (pool: Pool): Promise<SyncResult> =>
    createSyncer(
      edgeConfig({ url: urls.get(pool)!, pool } as TestDatabase, api.url, mac, token),
      pool,
      quietLog,
      { initialDelayMs: 10 },
    ).run('cli');

  before(async () => {
    pg15 = await startPostgres();
    central = await createTestDatabase('central');
    ({ mac, token } = await seedOneScope(central, 1500));
    api = await startCentral(central, { RATE_LIMIT_PER_DEVICE_PER_MINUTE: '1000' });
    owner = await edgeDatabase('edge_owner', 'edge_owner_role');
    superuser = await edgeDatabase('edge_superuser', undefined);
  });
  after(async () => {
    for (const pool of pools) await pool.end();
    await api?.[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
    pg15?.close();
  });

  it('loads with keys deferred, not with triggers off', async () => {
    const { rows } = await owner.query<{ su: string; v: string }>(
      "SELECT current_setting('is_superuser') AS su, current_setting('server_version_num') AS v",
    );
    assert.deepEqual([rows[0]!.su, rows[0]!.v.slice(0, 2)], ['off', '15']);
    assert.equal(await loadModeOf(owner), 'deferred');
    assert.equal(await loadModeOf(superuser), 'replica');
    for (const pool of [owner, superuser]) {
      const first = await sync(pool);
      assert.equal(first.status, 'success', JSON.stringify(first.error));
      assert.deepEqual(await edgeRows(pool), await centralScopeRows(central.pool, mac));
    }
  });

  it('patches a one-user edit exactly as a superuser edge does: same rows, pieces and bytes', async () => {
    await central.pool.query(
      `UPDATE users SET display_name = display_name || ' (owner test)', updated_at = now()
        WHERE id = (SELECT min(user_id::text)::uuid FROM group_users)`,
    );
    const [asOwner, asSuperuser] = [await sync(owner), await sync(superuser)];
    for (const r of [asOwner, asSuperuser]) assert.equal(r.status, 'success', JSON.stringify(r.error));
    assert.deepEqual(asOwner.tablesLoaded, ['users']);
    assert.equal(asOwner.rowsLoaded, asSuperuser.rowsLoaded);
    assert.ok(asOwner.rowsLoaded < 1500 / 2, `a delta, not a reload: ${asOwner.rowsLoaded} rows`);
    assert.deepEqual(
      { ...asOwner.transfer, bytesReceived: 0 },
      { ...asSuperuser.transfer, bytesReceived: 0 },
      'the same pieces fetched and kept',
    );
    // The answers differ only in their manifests' ids and signatures.
    assert.ok(Math.abs(asOwner.transfer!.bytesReceived - asSuperuser.transfer!.bytesReceived) < 200);
    console.log(
      `one-user edit: owner ${asOwner.rowsLoaded} rows, ${asOwner.transfer!.piecesFetched} pieces, ${asOwner.transfer!.bytesReceived} B; ` +
        `superuser ${asSuperuser.rowsLoaded} rows, ${asSuperuser.transfer!.piecesFetched} pieces, ${asSuperuser.transfer!.bytesReceived} B`,
    );
    for (const pool of [owner, superuser])
      assert.deepEqual(await edgeRows(pool), await centralScopeRows(central.pool, mac));
  });

  it('patches a parent table under kept children, keys enforced', async () => {
    // A group renamed: its piece of `groups` is deleted and inserted again while the kept
    // location_groups and group_users rows point at it; immediate keys refused that.
    await central.pool.query(
      `UPDATE groups SET name = name || ' (renamed)', updated_at = now() WHERE id = (SELECT min(group_id::text)::uuid FROM group_users)`,
    );
    const result = await sync(owner);
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.deepEqual(result.tablesLoaded, ['groups']);
    assert.deepEqual(await edgeRows(owner), await centralScopeRows(central.pool, mac));
    // The keys are still enforced outside a load.
    const refused = await owner
      .query(`DELETE FROM groups WHERE id = (SELECT min(group_id::text)::uuid FROM group_users)`)
      .then(
        () => 'deleted',
        (err: { code: string }) => err.code,
      );
    assert.equal(refused, '23503');
  });

  it('says so at start, in a metric and in /status when deltas cannot run', async () => {
    // A key made immediate by hand: no way left to load a table alone.
    await owner.query('ALTER TABLE users ALTER CONSTRAINT users_company_id_fkey NOT DEFERRABLE');
    const { logger: log, lines } = capturedLog<{ event?: string; level?: number; mode?: string }>();
    const config = edgeConfig({ url: urls.get(owner)!, pool: owner } as TestDatabase, api.url, mac, token, {
      PORT: '0',
      HOST: '127.0.0.1',
      SYNC_INTERVAL_SECONDS: '3600',
    });
    const edge = await startEdge(config, log);
    try {
      await edge.firstSync;
      const warned = lines.find((l) => l.event === 'edge.load_mode');
      assert.deepEqual([warned?.mode, warned?.level], ['whole', 40]);
      const status = (await (await fetch(`${edge.url}/status`)).json()) as { loadMode: string };
      assert.equal(status.loadMode, 'whole');
      const metrics = await (await fetch(`${edge.url}/metrics`)).text();
      assert.match(metrics, /^dbupdate_edge_load_mode\{mode="whole"\} 1$/m);
    } finally {
      await edge.stop();
      await owner.query('ALTER TABLE users ALTER CONSTRAINT users_company_id_fkey DEFERRABLE');
    }
  });
});
