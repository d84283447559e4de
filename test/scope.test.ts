/** contract §2: a device receives exactly its scope, on data where a wrong join would leak. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { Fixture, keysOf } from './helpers/fixtures.ts';
import { waitFor } from './helpers/wait.ts';
import { readWholeSnapshot, requestSnapshot, type ReadSnapshot } from './helpers/snapshot.ts';

describe('device scope', () => {
  let db: TestDatabase;
  let central: RunningCentral;
  const ids: Record<string, string> = {};
  let token: string;

  before(async () => {
    db = await createTestDatabase('central');
    const f = new Fixture(db.pool);
    ids.acme = await f.company('Acme');
    ids.other = await f.company('Other');
    ids.north = await f.location(ids.acme, 'North');
    ids.south = await f.location(ids.acme, 'South');
    ids.otherLoc = await f.location(ids.other, 'Elsewhere');
    ids.shared = await f.group(ids.acme, 'shared', [ids.north, ids.south]);
    ids.northOnly = await f.group(ids.acme, 'north only', [ids.north]);
    ids.southOnly = await f.group(ids.acme, 'south only', [ids.south]);
    ids.unlinked = await f.group(ids.acme, 'linked nowhere', []);
    ids.otherGroup = await f.group(ids.other, 'other', [ids.otherLoc]);
    ids.uShared = await f.user(ids.acme, 'shared@acme', [ids.shared]);
    ids.uBoth = await f.user(ids.acme, 'both@acme', [ids.northOnly, ids.southOnly]);
    ids.uSouth = await f.user(ids.acme, 'south@acme', [ids.southOnly]);
    ids.uUnlinked = await f.user(ids.acme, 'unlinked@acme', [ids.unlinked]);
    ids.uNoGroup = await f.user(ids.acme, 'nogroup@acme', []);
    ids.uOther = await f.user(ids.other, 'x@other', [ids.otherGroup]);
    ids.aNorth = await f.area(ids.north, 'dock');
    ids.aSouth = await f.area(ids.south, 'yard');
    ids.dNorth = await f.device(ids.north, '02:00:00:00:00:01');
    ids.dNorthPeer = await f.device(ids.north, '02:00:00:00:00:02');
    ids.dSouth = await f.device(ids.south, '02:00:00:00:00:03');
    token = (await enrollDevice(db.pool, '02:00:00:00:00:01')).secret;
    central = await startCentral(db);
  });
  after(async () => {
    await central?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  async function snapshot(): Promise<ReadSnapshot> {
    const res = await requestSnapshot(central.url, { mac: '02:00:00:00:00:01' }, token);
    assert.equal(res.status, 200);
    return readWholeSnapshot(res.body!);
  }
  const table = (s: ReadSnapshot, name: string) => s.tables.find((t) => t.name === name)!;
  const sorted = (...values: string[]) => [...values].sort();

  it('holds exactly the rows of the device, its location and company', async () => {
    const s = await snapshot();
    assert.deepEqual(keysOf(table(s, 'companies').copyText), [ids.acme]);
    assert.deepEqual(keysOf(table(s, 'locations').copyText), [ids.north]);
    assert.deepEqual(keysOf(table(s, 'groups').copyText), sorted(ids.shared!, ids.northOnly!));
    assert.deepEqual(
      keysOf(table(s, 'location_groups').copyText, 2),
      sorted(`${ids.north}|${ids.shared}`, `${ids.north}|${ids.northOnly}`),
    );
    assert.deepEqual(keysOf(table(s, 'users').copyText), sorted(ids.uShared!, ids.uBoth!));
    assert.deepEqual(
      keysOf(table(s, 'group_users').copyText, 2),
      sorted(`${ids.shared}|${ids.uShared}`, `${ids.northOnly}|${ids.uBoth}`),
      'memberships of in-scope users in out-of-scope groups stay out',
    );
    assert.deepEqual(keysOf(table(s, 'areas').copyText), [ids.aNorth]);
    assert.deepEqual(keysOf(table(s, 'devices').copyText), [ids.dNorth], 'not the peer device');
    assert.deepEqual(
      s.manifest.tables.map((t) => t.rowCount),
      s.tables.map((t) => t.rowCount),
    );
    assert.deepEqual(s.manifest.filters, {
      companyId: ids.acme,
      locationId: ids.north,
      deviceId: ids.dNorth,
    });
  });

  it('follows membership and link changes', async () => {
    const before = await snapshot();
    await db.pool.query('INSERT INTO group_users VALUES ($1, $2)', [ids.shared, ids.uNoGroup]);
    await db.pool.query('DELETE FROM location_groups WHERE location_id = $1 AND group_id = $2', [
      ids.north,
      ids.northOnly,
    ]);
    try {
      const s = await snapshot();
      assert.notEqual(s.manifest.globalSha256, before.manifest.globalSha256);
      assert.deepEqual(keysOf(table(s, 'groups').copyText), [ids.shared]);
      assert.deepEqual(keysOf(table(s, 'users').copyText), sorted(ids.uShared!, ids.uNoGroup!));
    } finally {
      await db.pool.query('DELETE FROM group_users WHERE group_id = $1 AND user_id = $2', [
        ids.shared,
        ids.uNoGroup,
      ]);
      await db.pool.query('INSERT INTO location_groups VALUES ($1, $2)', [ids.north, ids.northOnly]);
    }
    assert.equal(
      (await snapshot()).manifest.globalSha256,
      before.manifest.globalSha256,
      'same data, same hash',
    );
  });

  it('sends no rows when the device already holds this snapshot', async () => {
    const first = await snapshot();
    const res = await requestSnapshot(
      central.url,
      { mac: '02:00:00:00:00:01', knownGlobalSha256: first.manifest.globalSha256 },
      token,
    );
    const s = await readWholeSnapshot(res.body!);
    assert.equal(s.manifest.rowsIncluded, false);
    assert.equal(s.tables.length, 0);
    assert.equal(s.manifest.globalSha256, first.manifest.globalSha256);
    // The audit row is finished as the response completes, just after the client has it.
    const rows = await waitFor(
      async () =>
        (
          await db.pool.query('SELECT status FROM sync_requests WHERE manifest_id = $1', [
            s.manifest.manifestId,
          ])
        ).rows,
      (r) => r.length > 0, // manifest_id is written when the row is finished
    );
    assert.deepEqual(rows, [{ status: 'unchanged' }]);
  });

  it('refuses a link between a location and a group of another company', async () => {
    await assert.rejects(
      db.pool.query('INSERT INTO location_groups VALUES ($1, $2)', [ids.north, ids.otherGroup]),
      /belong to different companies/,
    );
    await assert.rejects(
      db.pool.query('INSERT INTO group_users VALUES ($1, $2)', [ids.shared, ids.uOther]),
      /belong to different companies/,
    );
  });
});
