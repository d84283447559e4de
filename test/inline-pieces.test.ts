/**
 * Inline pieces: an edge that holds nothing gets every piece in the snapshot answer, after
 * the manifest, when Central holds them in memory and they are small (INLINE_PIECES_KB). One
 * request instead of two; a cut answer resumes by /pieces like a cut fetch.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startLink } from '../scripts/lib/link.ts';
import { pieceFromWire, pieceId } from '../src/contract/pieces.ts';
import { readSnapshot } from '../src/contract/snapshot-reader.ts';
import { INLINE_PIECES_HEADER } from '../src/contract/wire.ts';
import { oneScopeCentral, startCentral } from './helpers/central.ts';
import { centralScopeRows, edgeRows, testSyncer } from './helpers/edge.ts';

/** About 600 KB of rows, 100 KB compressed: many 16 KB slices of the loopback link. */
const USERS = 1500;

describe('inline pieces', () => {
  const scope = oneScopeCentral(USERS, {
    RATE_LIMIT_PER_DEVICE_PER_MINUTE: '100000',
    INLINE_PIECES_KB: '1024',
  });
  const metric = async (pattern: RegExp) =>
    Number(pattern.exec(await (await fetch(`${scope.central.url}/metrics`)).text())?.[1] ?? 0);
  const inlineSent = () => metric(/^dbupdate_central_pieces_total\{result="inline"\} (\d+)/m);
  const fetched = () => metric(/^dbupdate_central_piece_fetches_total\{outcome="served"\} (\d+)/m);

  /** The items of one snapshot answer, each piece's rows read whole. */
  async function answer(body: object, headers: Record<string, string>) {
    const res = await fetch(`${scope.central.url}/api/device-sync/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${scope.token}`, ...headers },
      body: JSON.stringify({ mac: scope.mac, pieces: true, ...body }),
    });
    assert.equal(res.status, 200);
    const items: { type: string; frame?: unknown; rows?: Buffer }[] = [];
    let manifest;
    for await (const item of readSnapshot(res.body!)) {
      if (item.type === 'manifest') manifest = item.manifest;
      else if (item.type === 'piece') {
        const rows: Buffer[] = [];
        for await (const chunk of item.rows) rows.push(chunk);
        items.push({ type: 'piece', frame: item.frame, rows: Buffer.concat(rows) });
      } else items.push({ type: item.type, frame: item.frame });
    }
    return { manifest: manifest!, items };
  }

  it('sends every piece after the manifest to an edge that holds nothing and asked, and only then', async () => {
    const asked = await answer({}, { [INLINE_PIECES_HEADER]: '1' });
    const lists = asked.manifest.pieces!;
    const expected = Object.entries(lists).flatMap(([table, list]) =>
      list.map((ref, index) => ({ table, index, piece: pieceFromWire(ref) })),
    );
    assert.ok(expected.length > 3, `${expected.length} pieces`);
    const pieces = asked.items.filter((i) => i.type === 'piece');
    assert.deepEqual(
      pieces.map((p) => p.frame),
      expected.map((e) => ({ table: e.table, index: e.index, rowCount: e.piece.rows })),
      'every piece, in contract order',
    );
    for (const [i, p] of pieces.entries()) assert.equal(pieceId([p.rows!]), expected[i]!.piece.id);
    assert.deepEqual(asked.items.at(-1), { type: 'end', frame: { end: true, pieces: expected.length } });

    // Not asked, or offering what it holds: the manifest and the end line only, as before.
    const notAsked = await answer({}, {});
    const offering = await answer({ knownGlobalSha256: 'a'.repeat(64) }, { [INLINE_PIECES_HEADER]: '1' });
    for (const other of [notAsked, offering])
      assert.deepEqual(other.items, [{ type: 'end', frame: { end: true, tables: 0 } }]);
  });

  it('loads a first sync from the answer alone: no piece fetch, exactly its scope, the bytes audited', async () => {
    const [inline0, fetched0] = [await inlineSent(), await fetched()];
    const db = await scope.newEdge();
    const result = await testSyncer(db, scope.central.url, scope.mac, scope.token).run('cli');
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.equal(result.transfer?.fetches, 0, 'no piece fetch');
    assert.ok(result.transfer!.piecesFetched > 3);
    assert.equal((await inlineSent()) - inline0, result.transfer!.piecesFetched);
    assert.equal((await fetched()) - fetched0, 0);
    assert.deepEqual(await edgeRows(db.pool), await centralScopeRows(scope.centralDb.pool, scope.mac));
    // Central audits the answer it made byte for byte as the edge received it: every piece in it.
    const { rows } = await scope.centralDb.pool.query<{
      status: string;
      bytes_sent: string;
      payload_sha256: string;
    }>('SELECT status, bytes_sent, payload_sha256 FROM sync_requests WHERE manifest_id = $1', [
      result.manifestId,
    ]);
    const ledger = await db.pool.query<{ payload_sha256: string }>(
      'SELECT payload_sha256 FROM edge_sync_log WHERE manifest_id = $1',
      [result.manifestId],
    );
    assert.equal(rows[0]?.status, 'served');
    assert.equal(Number(rows[0]!.bytes_sent), result.transfer!.bytesReceived);
    assert.equal(rows[0]!.payload_sha256, ledger.rows[0]!.payload_sha256);
    const staged = await db.pool.query('SELECT count(*)::int AS n FROM edge_staged_pieces');
    assert.equal(staged.rows[0].n, 0);
  });

  it('resumes an answer cut among its pieces by /pieces, fetching only what did not arrive', async () => {
    const { port } = new URL(scope.central.url);
    const target = { host: '127.0.0.1', port: Number(port) };
    const cleanLink = await startLink(target, { bitsPerSecond: 0, latencyMs: 0 });
    const cleanDb = await scope.newEdge();
    const clean = await testSyncer(cleanDb, cleanLink.url, scope.mac, scope.token).run('cli');
    await cleanLink.close();
    assert.equal(clean.status, 'success', JSON.stringify(clean.error));
    assert.equal(clean.transfer?.fetches, 0);

    // The link delivers at most 16 KB at a time and cuts after the write that crosses the
    // mark: past the manifest's frame (a few KB, whatever the segments), well before the end.
    assert.ok(cleanLink.bytesDown > 60_000, `${cleanLink.bytesDown} bytes`);
    const cutLink = await startLink(target, { bitsPerSecond: 2_000_000, latencyMs: 5, cutAtBytes: [30_000] });
    const cutDb = await scope.newEdge();
    const [inline0, fetched0] = [await inlineSent(), await fetched()];
    const resumed = await testSyncer(cutDb, cutLink.url, scope.mac, scope.token).run('cli');
    await cutLink.close();
    assert.equal(resumed.status, 'success', JSON.stringify(resumed.error));
    assert.equal(cutLink.cuts, 1);
    assert.ok(resumed.transfer!.fetches >= 1, 'the rest came by /pieces');
    assert.ok((await fetched()) - fetched0 >= 1);
    assert.ok((await inlineSent()) - inline0 > 0, 'the answer carried its pieces');
    assert.equal(resumed.transfer?.piecesFetched, clean.transfer?.piecesFetched, 'none taken twice');
    assert.deepEqual(await edgeRows(cutDb.pool), await edgeRows(cleanDb.pool));
    assert.deepEqual(resumed.tables, clean.tables);
  });

  it('leaves a scope larger than INLINE_PIECES_KB to /pieces', async () => {
    await using small = await startCentral(scope.centralDb, {
      RATE_LIMIT_PER_DEVICE_PER_MINUTE: '100000',
      INLINE_PIECES_KB: '8',
    });
    const db = await scope.newEdge();
    const result = await testSyncer(db, small.url, scope.mac, scope.token).run('cli');
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.equal(result.transfer?.fetches, 1);
    assert.deepEqual(await edgeRows(db.pool), await centralScopeRows(scope.centralDb.pool, scope.mac));
  });
});
