/**
 * A device whose location's shared tables are hashed gets its digests from its own row,
 * read in a batch with its neighbours' rows instead of a snapshot session of its own. The
 * row must be the one the request's scope version names: a row changed since is not used.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CentralMetrics } from '../src/central/metrics.ts';
import { deviceFromRow, type Device, type DeviceRow } from '../src/central/model.ts';
import { copyScopedTable, setScopeAndReadVersion } from '../src/central/sync/repo/scope.ts';
import { OwnRowReader } from '../src/central/sync/scope/own-rows.ts';
import { scopeDigests } from '../src/central/sync/scope/digests.ts';
import { scopeVersionParts } from '../src/central/sync/scope/version.ts';
import { answerFromMemory } from './helpers/choose.ts';
import { SnapshotSession } from '../src/central/sync/sources/snapshot-session.ts';
import { ScopeMemory } from '../src/central/sync/memory/memory.ts';
import { DATA_MODEL } from '../src/contract/data-model.ts';
import type { TableDigest } from '../src/contract/canonical.ts';
import { tableDef } from './helpers/tables.ts';
import { createPool, type Pool } from '../src/platform/db.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

const pieces = { global: undefined, tables: undefined, pieces: true };

describe("devices' own rows", () => {
  let db: TestDatabase;
  let rowPool: Pool;
  let devices: Device[];

  before(async () => {
    db = await createTestDatabase('central');
    await seedCentral(db.pool, { ...DEFAULT_SHAPE, companies: 1, devicesPerLocation: 3 }, { reset: false });
    rowPool = createPool(db.url, { max: 1, applicationName: 'test-own-rows' });
    const { rows } = await db.pool.query<DeviceRow>(
      `SELECT d.id, d.mac::text AS mac, d.location_id, l.company_id, d.is_enabled
         FROM devices d JOIN locations l ON l.id = d.location_id
        WHERE d.location_id = (SELECT location_id FROM devices ORDER BY mac LIMIT 1) ORDER BY d.mac`,
    );
    devices = rows.map(deviceFromRow);
    assert.equal(devices.length, 3);
  });
  after(async () => {
    await rowPool?.end();
    await db?.[Symbol.asyncDispose]();
  });

  const caches = () => ({
    memory: new ScopeMemory({ digestEntries: 100, tableBytes: 16 * 2 ** 20 }),
    metrics: new CentralMetrics({ defaults: false }),
    ownRows: new OwnRowReader(rowPool),
  });

  /** What a snapshot session of its own reads and hashes for `device`. */
  async function inSession(
    device: Device,
    c = caches(),
  ): Promise<{ version: string; digests: TableDigest[]; devicesText: string }> {
    const session = await SnapshotSession.open(db.pool);
    try {
      const version = await setScopeAndReadVersion(session.client, device);
      const { digests } = await scopeDigests(c, session.client, device, DATA_MODEL, version);
      let devicesText = '';
      for await (const chunk of copyScopedTable(session.client, tableDef('devices'))) devicesText += chunk;
      return { version, digests, devicesText };
    } finally {
      await session.close();
    }
  }

  it('reads a batch of rows byte for byte as a session copies them, each with its xmin', async () => {
    const reader = new OwnRowReader(rowPool, { maxItems: 10, concurrency: 1, minGapMs: 50 });
    const missing = '00000000-0000-4000-8000-000000000000';
    const rows = await Promise.all(
      [...devices.map((d) => d.id), missing].map((id) => reader.read(id, tableDef('devices'))),
    );
    assert.equal(rows[3], undefined, 'no row for an unknown device');
    for (const [i, device] of devices.entries()) {
      const { version, devicesText } = await inSession(device);
      assert.equal(rows[i]!.line.toString(), devicesText);
      assert.equal(rows[i]!.xmin, scopeVersionParts(version).deviceXmin);
    }
  });

  it("completes a neighbour's shared digests with its own row, and only with the row its version names", async () => {
    const c = caches();
    await inSession(devices[0]!, c); // hashes the location's shared tables into `c`
    const [, second] = devices;
    const expected = await inSession(second!);
    const answer = await answerFromMemory(c, second!, DATA_MODEL, expected.version, pieces);
    assert.deepEqual(answer?.tables, expected.digests, 'the digests a session of its own computes');
    assert.equal(answer?.rows, false);
    assert.ok(answer?.pieces?.get('devices')?.length, "its own row's piece is listed, and kept");

    // The row changes after the version was read (its location's version does not: the shared
    // digests still hold): the old version's answer is not made from the new row. (Asked of a
    // Central that did not answer it at that version yet: `c` now remembers its digests.)
    const fresh = caches();
    await inSession(devices[0]!, fresh);
    await db.pool.query(`UPDATE devices SET name = name || ' (renamed)' WHERE id = $1`, [second!.id]);
    assert.equal(
      await answerFromMemory(fresh, second!, DATA_MODEL, expected.version, pieces),
      undefined,
      'a row whose xmin is not the version read with the request is not used',
    );
    const now = await inSession(second!);
    assert.notEqual(now.version, expected.version);
    assert.equal(scopeVersionParts(now.version).location, scopeVersionParts(expected.version).location);
    const renamed = await answerFromMemory(fresh, second!, DATA_MODEL, now.version, pieces);
    assert.deepEqual(renamed?.tables, now.digests);
  });

  it('opens nothing without the shared digests', async () => {
    const c = caches();
    const { version } = await inSession(devices[2]!);
    assert.equal(await answerFromMemory(c, devices[2]!, DATA_MODEL, version, pieces), undefined);
  });
});
