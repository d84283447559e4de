/**
 * A rolling upgrade across a mixed fleet, with a second data-model version defined here
 * (users gain a nullable `badge` column) and not shipped: Central migrates to v2 and
 * serves v2 and v1 (the projection of its tables onto v1's columns); an old edge keeps
 * syncing through the upgrade without reloading what it holds; an upgraded edge migrates
 * its own database forward and loads the new shape; nothing is lost; an edge too new or
 * too old is refused with SCHEMA_VERSION_UNSUPPORTED, audited; the admin API shows the
 * fleet by version.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { centralMigrations } from '../src/central/migrations.ts';
import { ServedModels } from '../src/central/sync/versions.ts';
import { DATA_MODEL, DATA_MODELS, requireProjection, withColumn } from '../src/contract/data-model.ts';
import { SCHEMA_VERSION_HEADER } from '../src/contract/wire.ts';
import { edgeMigrations, prepareEdgeDatabase } from '../src/edge/migrations.ts';
import { createSyncer } from '../src/edge/syncer.ts';
import { verifyLocal } from '../src/edge/verify/local.ts';
import { migrate, type Migration } from '../src/platform/migrate.ts';
import { seedEnrolledDevices, startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { centralScopeRows, edgeConfig, edgeRows, quietLog, testSyncer } from './helpers/edge.ts';

const V1 = DATA_MODEL;
/** The next release's model, appended to the shipped history as a release appends it. */
const V2 = withColumn(V1, 'users', { name: 'badge', type: 'text' });
const NEXT_MODELS = [...DATA_MODELS, V2];
const ADMIN = 'admin-token-for-rolling-upgrades';

/** The migrations of a release that takes in data-model v2: one more, with its SQL. */
const toV2 = (list: Migration[]): Migration[] => [
  ...list,
  {
    id: list.length + 1,
    name: `${String(list.length + 1).padStart(4, '0')}_data_model_v2.sql`,
    sql: 'ALTER TABLE users ADD COLUMN badge text NULL',
    dataModelVersion: 2,
  },
];

describe('rolling upgrade across a mixed fleet', () => {
  let central: TestDatabase;
  const edges: TestDatabase[] = [];
  let server: RunningCentral;
  let macs: string[];
  let tokens: Map<string, string>;
  const env = { ADMIN_TOKEN: ADMIN };

  before(async () => {
    central = await createTestDatabase('central');
    ({ macs, tokens } = await seedEnrolledDevices(central, {
      companies: 1,
      locationsPerCompany: 1,
      devicesPerLocation: 2,
      usersPerCompany: 40,
    }));
    for (let i = 0; i < 2; i++) edges.push(await createTestDatabase('edge'));
    server = await startCentral(central, env);
  });
  after(async () => {
    await server[Symbol.asyncDispose]();
    for (const db of [...edges, central]) await db[Symbol.asyncDispose]();
  });

  const oldEdge = () => testSyncer(edges[0]!, server.url, macs[0]!, tokens.get(macs[0]!)!);
  const newEdge = () =>
    createSyncer(
      edgeConfig(edges[1]!, server.url, macs[1]!, tokens.get(macs[1]!)!),
      edges[1]!.pool,
      quietLog,
      {
        initialDelayMs: 10,
        model: V2,
      },
    );

  it('both edges sync at v1 before the upgrade', async () => {
    for (const [i, mac] of macs.entries()) {
      const result = await testSyncer(edges[i]!, server.url, mac, tokens.get(mac)!).run('manual');
      assert.equal(result.status, 'success', JSON.stringify(result.error));
    }
  });

  it('Central migrates to v2 and serves v1 edges the projection, reloading nothing they hold', async () => {
    await server[Symbol.asyncDispose]();
    const { applied } = await migrate(central.pool, toV2(await centralMigrations()));
    assert.deepEqual(applied, [
      `${String((await centralMigrations()).length + 1).padStart(4, '0')}_data_model_v2.sql`,
    ]);
    await central.pool.query(`UPDATE users SET badge = 'B-' || left(id::text, 8)`);
    server = await startCentral(central, env, false, {
      dataModels: NEXT_MODELS,
      migrations: toV2(await centralMigrations()),
    });

    const before = await edgeRows(edges[0]!.pool);
    const unchanged = await oldEdge().run('manual');
    assert.equal(unchanged.status, 'unchanged', 'a column v1 does not have changes nothing for v1');
    assert.equal(unchanged.rowsLoaded, 0);
    assert.deepEqual(await edgeRows(edges[0]!.pool), before);

    await central.pool.query(
      `UPDATE users SET display_name = 'Renamed in v2', updated_at = now() WHERE id = (SELECT id FROM users ORDER BY id LIMIT 1)`,
    );
    const changed = await oldEdge().run('manual');
    assert.equal(changed.status, 'success', JSON.stringify(changed.error));
    assert.deepEqual(
      await edgeRows(edges[0]!.pool),
      await centralScopeRows(central.pool, macs[0]!, V1.tables),
    );
    const { rows } = await edges[0]!.pool.query(
      `SELECT count(*)::int AS n FROM users WHERE display_name = 'Renamed in v2'`,
    );
    assert.equal(rows[0].n, 1);
  });

  it('an upgraded edge migrates its own database forward and loads the new shape', async () => {
    const edge = edges[1]!;
    const heldBefore = await edgeRows(edge.pool);
    // What the new edge image runs at start, with the release's migrations.
    await prepareEdgeDatabase(edge.pool, undefined, undefined, toV2(await edgeMigrations()));
    // Forward, in place: the v1 data is still there, with the new column empty.
    const migrated = await edge.pool.query<{ n: number; badges: number }>(
      'SELECT count(*)::int AS n, count(badge)::int AS badges FROM users',
    );
    assert.deepEqual(migrated.rows[0], { n: heldBefore.users!.length, badges: 0 });

    const result = await newEdge().run('manual');
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.deepEqual(result.tablesLoaded, ['users'], 'only the table whose shape changed is reloaded');
    assert.deepEqual(
      await edgeRows(edge.pool, V2.tables),
      await centralScopeRows(central.pool, macs[1]!, V2.tables),
    );
    const badges = await edge.pool.query<{ badges: number; n: number }>(
      "SELECT count(*) FILTER (WHERE badge LIKE 'B-%')::int AS badges, count(*)::int AS n FROM users",
    );
    assert.equal(badges.rows[0]!.badges, badges.rows[0]!.n);
    assert.ok(badges.rows[0]!.n > 0);
    assert.deepEqual((await verifyLocal(edge.pool, V2)).drifted, []);

    // Old and new keep syncing side by side against the one Central.
    await central.pool.query(
      `UPDATE users SET badge = 'C-1' WHERE id = (SELECT id FROM users ORDER BY id DESC LIMIT 1)`,
    );
    // A badge-only edit is news to v2 edges and none to v1 ones (their columns did not change).
    assert.equal((await newEdge().run('manual')).status, 'success');
    const last = await edge.pool.query('SELECT badge FROM users ORDER BY id DESC LIMIT 1');
    assert.equal(last.rows[0].badge, 'C-1');
    assert.equal((await oldEdge().run('manual')).status, 'unchanged');
  });

  it('refuses an edge newer than Central, audited, and shows the fleet by version', async () => {
    const res = await fetch(`${server.url}/api/device-sync/request`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${tokens.get(macs[0]!)!}`,
        [SCHEMA_VERSION_HEADER]: '3',
      },
      body: JSON.stringify({ mac: macs[0] }),
    });
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(res.status, 409);
    assert.equal(body.error.code, 'SCHEMA_VERSION_UNSUPPORTED');
    assert.match(
      body.error.message,
      /serves schema versions 1 and 2; the edge is at 3: upgrade Central first/,
    );
    const audit = await central.pool.query(
      `SELECT status, schema_version, error_code FROM sync_requests WHERE mac = $1 ORDER BY requested_at DESC LIMIT 1`,
      [macs[0]],
    );
    assert.deepEqual(audit.rows[0], {
      status: 'unsupported_schema',
      schema_version: 3,
      error_code: 'SCHEMA_VERSION_UNSUPPORTED',
    });
    // Back at v1, so the fleet view shows one edge per version.
    assert.equal((await oldEdge().run('manual')).status, 'unchanged');

    const view = await fetch(`${server.url}/api/admin/devices/versions`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    assert.equal(view.status, 200);
    const versions = (await view.json()) as {
      served: number[];
      versions: { schemaVersion: number; devices: number }[];
    };
    assert.deepEqual(versions.served, [1, 2]);
    assert.deepEqual(
      versions.versions.map((v) => [v.schemaVersion, v.devices]),
      [
        [1, 1],
        [2, 1],
      ],
    );
  });

  it('serves N and N-1 only: an edge two versions behind is told to upgrade', () => {
    const V3 = withColumn(V2, 'areas', { name: 'zone', type: 'text' });
    const served = new ServedModels([V1, V2, V3]);
    assert.deepEqual(served.versions, [2, 3]);
    assert.equal(served.forEdge({ schemaVersion: 2 }), V2);
    assert.throws(
      () => served.forEdge({ schemaVersion: 1 }),
      /serves schema versions 2 and 3; the edge is at 1: upgrade the edge/,
    );
    // A version that is not a projection of the next (a column's type changed) cannot be served.
    const retyped = {
      version: 2,
      tables: V1.tables.map((t) =>
        t.name === 'areas'
          ? {
              ...t,
              columns: t.columns.map((c) => (c.name === 'floor' ? { ...c, type: 'text' as const } : c)),
            }
          : t,
      ),
    };
    assert.throws(() => requireProjection(retyped, V1), /areas\.floor is not in v2 as integer/);
    assert.throws(() => new ServedModels([V1, retyped]), /not a projection/);
  });
});
