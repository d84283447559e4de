/**
 * Identical table content is read once: the devices of one location share every table but
 * `devices`, so after one of them was sent its snapshot, the next is served those tables
 * from memory (and their digests, hashed once), with rows that still hash to its manifest.
 */
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { countFleet } from '../src/central/sync/repo/scope.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { centralScopeRows, edgeRows, testSyncer } from './helpers/edge.ts';
import { assertRowsMatchManifest, readWholeSnapshot, requestSnapshot } from './helpers/snapshot.ts';

describe('the table cache', () => {
  let db: TestDatabase;
  let api: RunningCentral;
  const tokens = new Map<string, string>();
  let pair: [string, string];

  before(async () => {
    db = await createTestDatabase('central');
    await seedCentral(db.pool, { ...DEFAULT_SHAPE, companies: 1, devicesPerLocation: 2 }, { reset: false });
    const { rows } = await db.pool.query<{ mac: string }>(
      `SELECT mac::text AS mac FROM devices WHERE location_id = (SELECT min(location_id::text)::uuid FROM devices) ORDER BY mac`,
    );
    pair = [rows[0]!.mac, rows[1]!.mac];
    for (const mac of pair) tokens.set(mac, (await enrollDevice(db.pool, mac)).secret);
    api = await startCentral(db);
  });
  const edges: TestDatabase[] = [];
  after(async () => {
    for (const edge of edges) await edge[Symbol.asyncDispose]();
    await api?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  const metric = async (pattern: RegExp) =>
    Number(pattern.exec(await (await fetch(`${api.url}/metrics`)).text())?.[1] ?? 0);
  const fromCache = () => metric(/^dbupdate_central_table_cache_bytes_total (\d+)/m);
  const sessions = () => metric(/^dbupdate_central_snapshot_sessions_total (\d+)/m);
  const shared = () => metric(/^dbupdate_central_digest_cache_total\{result="shared"\} (\d+)/m);
  async function snapshot(mac: string) {
    const res = await requestSnapshot(api.url, { mac }, tokens.get(mac));
    assert.equal(res.status, 200);
    const s = await readWholeSnapshot(res.body!);
    assertRowsMatchManifest(s);
    return s;
  }

  it('counts the fleet it is sized from: locations and the bytes of the tables they share', async () => {
    const fleet = await countFleet(db.pool);
    const { rows } = await db.pool.query<{ n: number; bytes: number }>(
      `SELECT (SELECT count(*)::int FROM locations) AS n, pg_table_size('users')::float8 AS bytes`,
    );
    assert.equal(fleet.locations, rows[0]!.n);
    assert.ok(fleet.locations > 0);
    // users is one of the shared tables.
    assert.ok(fleet.sharedBytes > rows[0]!.bytes, `${fleet.sharedBytes} bytes`);
  });

  it('serves a neighbour the shared tables from memory, hashed once, its own row read without a session', async () => {
    const ownRow = () => metric(/^dbupdate_central_digest_cache_total\{result="own_row"\} (\d+)/m);
    const first = await snapshot(pair[0]);
    // Its digest pass read each table once and kept its pieces: the rows were sent from them.
    assert.equal(
      await fromCache(),
      first.tables.reduce((n, t) => n + Buffer.byteLength(t.copyText), 0),
      'the first device is sent the rows its digest pass read',
    );
    const [bytes0, shared0, ownRow0, opened0] = [
      await fromCache(),
      await shared(),
      await ownRow(),
      await sessions(),
    ];
    const second = await snapshot(pair[1]);
    const bytes = (name?: string) =>
      second.tables
        .filter((t) => (name ? t.name === name : true))
        .reduce((n, t) => n + Buffer.byteLength(t.copyText), 0);
    assert.ok(bytes() - bytes('devices') > 10_000, `${bytes()} bytes in all`);
    // The shared tables from memory; its own row, read in a batch, kept and sent from there too.
    assert.equal((await fromCache()) - bytes0, bytes(), 'every table came from memory');
    assert.ok(bytes('devices') > 0);
    assert.equal((await ownRow()) - ownRow0, 1, 'its own row completed the shared digests');
    assert.equal((await shared()) - shared0, 0, 'no digest pass');
    assert.equal(await sessions(), opened0, 'no snapshot session');
    assert.notEqual(first.manifest.globalSha256, second.manifest.globalSha256, 'the devices rows differ');
    assert.equal(
      second.tables.find((t) => t.name === 'devices')!.copyText.split('\t')[0],
      second.manifest.filters.deviceId,
      "its own row, not its neighbour's",
    );
    // Everything it needs is now in memory: a full request again opens no session.
    const again = await snapshot(pair[1]);
    assert.equal(again.manifest.globalSha256, second.manifest.globalSha256);
    assert.equal(await sessions(), opened0);
  });

  it('sends rows from memory as one buffer, compressed in one call, the same rows as a stream', async () => {
    const ask = (encoding: string) =>
      request(`${api.url}/api/device-sync/request`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${tokens.get(pair[1])}`,
          'accept-encoding': encoding,
        },
        body: JSON.stringify({ mac: pair[1] }),
      });
    const [zstd, identity] = [await ask('zstd'), await ask('identity')];
    assert.equal(zstd.statusCode, 200);
    assert.equal(zstd.headers['content-encoding'], 'zstd');
    const raw = Buffer.from(await zstd.body.arrayBuffer());
    assert.equal(Number(zstd.headers['content-length']), raw.length, 'a length: one buffer, not a stream');
    const buffered = zlib.zstdDecompressSync(raw);
    const streamed = Buffer.from(await identity.body.arrayBuffer());
    assert.equal(identity.headers['content-length'], undefined, 'uncompressed rows still stream');
    // After the manifest line (its id and times differ), frame for frame and row for row.
    const afterManifest = (b: Buffer) => b.subarray(b.indexOf(0x0a) + 1);
    assert.ok(afterManifest(buffered).length > 10_000);
    assert.ok(afterManifest(buffered).equals(afterManifest(streamed)));
  });

  it('serves pieces cut in the digest pass from memory, without a session, and the edge loads exactly its scope', async () => {
    const inline = () => metric(/^dbupdate_central_pieces_total\{result="inline"\} (\d+)/m);
    const reads = () => metric(/^dbupdate_central_snapshot_reads_total\{[^}]*\} (\d+)/m);
    for (const mac of pair) {
      const edge = await createTestDatabase('edge');
      edges.push(edge);
      const [bytes0, inline0, reads0] = [await fromCache(), await inline(), await reads()];
      const result = await testSyncer(edge, api.url, mac, tokens.get(mac)!).run('cli');
      assert.equal(result.status, 'success', JSON.stringify(result.error));
      assert.ok(result.transfer!.piecesFetched > 0, 'the rows came as pieces');
      assert.equal(result.transfer!.fetches, 0, 'in the answer: the edge held nothing');
      assert.equal((await inline()) - inline0, result.transfer!.piecesFetched);
      assert.equal(
        (await reads()) - reads0,
        0,
        'no snapshot session: the digest pass above kept every piece',
      );
      const scopeBytes = (await snapshot(mac)).tables.reduce((n, t) => n + Buffer.byteLength(t.copyText), 0);
      assert.equal((await fromCache()) - bytes0 - scopeBytes, scopeBytes, 'every piece came from memory');
      assert.deepEqual(await edgeRows(edge.pool), await centralScopeRows(db.pool, mac));
    }
  });
});
