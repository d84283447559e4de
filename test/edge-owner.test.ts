/**
 * An edge whose database user owns the tables but is not a superuser (what the README
 * asks for): it may not turn triggers off, so every sync empties and reloads every table
 * inside its one transaction, and still ends with exactly Central's rows.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TABLES } from '../src/contract/tables.ts';
import { createPool, type Pool } from '../src/platform/db.ts';
import { createSyncer } from '../src/edge/server.ts';
import type { Syncer } from '../src/edge/services/sync.ts';
import { seedOneScope, startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { centralScopeRows, edgeConfig, edgeRows, quietLog } from './helpers/edge.ts';

const ROLE = `t_edge_owner_${process.pid}`;

describe('an edge database user that owns the tables but is no superuser', () => {
  let central: TestDatabase;
  let edge: TestDatabase;
  let api: RunningCentral;
  let ownerPool: Pool;
  let syncer: Syncer;
  let mac: string;

  before(async () => {
    central = await createTestDatabase('central');
    edge = await createTestDatabase('edge');
    let token: string;
    ({ mac, token } = await seedOneScope(central, 300));
    api = await startCentral(central);
    await edge.pool.query(`CREATE ROLE ${ROLE} LOGIN PASSWORD 'owner-password' NOSUPERUSER`);
    await edge.pool.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${ROLE}`);
    // Their sequences follow the tables.
    const { rows } = await edge.pool.query<{ name: string }>(
      `SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'`,
    );
    for (const r of rows) await edge.pool.query(`ALTER TABLE "${r.name}" OWNER TO ${ROLE}`);
    const url = new URL(edge.url);
    url.username = ROLE;
    url.password = 'owner-password';
    ownerPool = createPool(url.href, { max: 3, applicationName: 'test-edge-owner' });
    const config = edgeConfig(edge, api.url, mac, token, { EDGE_DATABASE_URL: url.href });
    syncer = createSyncer(config, ownerPool, quietLog, { initialDelayMs: 10 });
  });
  after(async () => {
    await ownerPool?.end();
    await api?.[Symbol.asyncDispose]();
    await edge?.[Symbol.asyncDispose]();
    await central?.pool.query(`DROP ROLE IF EXISTS ${ROLE}`);
    await central?.[Symbol.asyncDispose]();
  });

  it('is refused the trigger bypass, and reloads every table each time', async () => {
    const su = await ownerPool.query<{ su: string }>("SELECT current_setting('is_superuser') AS su");
    assert.equal(su.rows[0]!.su, 'off');
    const first = await syncer.run('cli');
    assert.equal(first.status, 'success', JSON.stringify(first.error));
    assert.deepEqual(await edgeRows(ownerPool), await centralScopeRows(central.pool, mac));

    // One user changes: a superuser would reload `users` alone; this one reloads them all.
    await central.pool.query(
      `UPDATE users SET display_name = display_name || ' (owner test)', updated_at = now()
        WHERE id = (SELECT min(user_id::text)::uuid FROM group_users)`,
    );
    const second = await syncer.run('cli');
    assert.equal(second.status, 'success', JSON.stringify(second.error));
    assert.deepEqual(
      second.tablesLoaded,
      TABLES.map((t) => t.name),
    );
    assert.deepEqual(await edgeRows(ownerPool), await centralScopeRows(central.pool, mac));
  });
});
