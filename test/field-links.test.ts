/**
 * Field links (issue 17): transfers in verified pieces that resume after a cut, and deltas
 * that replace only the changed key ranges. Real Central, real edge databases, real HTTP,
 * through the loopback link simulator (scripts/lib/link.ts) and the fault proxy.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { startLink } from '../scripts/lib/link.ts';
import { oneScopeCentral, startCentral } from './helpers/central.ts';
import type { TestDatabase } from './helpers/db.ts';
import { centralScopeRows, edgeRows, testSyncer } from './helpers/edge.ts';
import { startFaultProxy, type FaultProxy } from './helpers/proxy.ts';

const USERS = 3000;

describe('field links: pieces, resume and deltas', () => {
  // Every test syncs the one device many times a minute.
  // Deltas' mechanics, with bulk edits: the mass-change guard (test/release.test.ts) stays out.
  const scope = oneScopeCentral(USERS, {
    RATE_LIMIT_PER_DEVICE_PER_MINUTE: '100000',
    RELEASE_GUARD_PERCENT: '0',
  });

  it('resumes a transfer cut at 90 % and loads exactly what a clean sync loads', async () => {
    const { port } = new URL(scope.central.url);
    const target = { host: '127.0.0.1', port: Number(port) };
    // 2 Mbit/s: an LTE downlink, which the edge keeps up with.
    const cleanLink = await startLink(target, { bitsPerSecond: 2_000_000, latencyMs: 5 });
    const cleanDb = await scope.newEdge();
    const clean = await testSyncer(cleanDb, cleanLink.url, scope.mac, scope.token).run('cli');
    await cleanLink.close();
    assert.equal(clean.status, 'success', JSON.stringify(clean.error));
    assert.equal(clean.transfer?.fetches, 1);
    const cleanBytes = cleanLink.bytesDown;

    const cutLink = await startLink(target, {
      bitsPerSecond: 2_000_000,
      latencyMs: 5,
      cutAtBytes: [Math.floor(cleanBytes * 0.9)],
    });
    const cutDb = await scope.newEdge();
    const resumed = await testSyncer(cutDb, cutLink.url, scope.mac, scope.token).run('cli');
    await cutLink.close();
    assert.equal(resumed.status, 'success', JSON.stringify(resumed.error));
    assert.equal(cutLink.cuts, 1, 'the link was cut once');
    // The cut fetch, then the resumed one (and perhaps one that met the cut's dead keep-alive socket).
    const fetches = resumed.transfer!.fetches;
    assert.ok(fetches >= 2 && fetches <= 3, `${fetches} fetches`);
    const total = clean.transfer!.piecesFetched;
    assert.equal(resumed.transfer?.piecesFetched, total, 'every piece fetched once, none twice');
    assert.deepEqual(await edgeRows(cutDb.pool), await edgeRows(cleanDb.pool));
    assert.deepEqual(await edgeRows(cutDb.pool), await centralScopeRows(scope.centralDb.pool, scope.mac));
    assert.deepEqual(resumed.tables, clean.tables);
    // At this size (200 KB) what a cut loses is mostly what was in the HTTP client's queue, which
    // a broken body discards; bench:link measures the ratio at 100,000 users.
    assert.ok(
      cutLink.bytesDown <= cleanBytes * 1.5,
      `received ${cutLink.bytesDown} bytes, a clean transfer is ${cleanBytes}`,
    );
    // The load waited in its transaction for the resumed fetch: each piece was written once,
    // into its table, and staging was never written at all (its heap is still empty).
    for (const db of [cleanDb, cutDb]) {
      const written = await db.pool.query(
        `SELECT pg_relation_size('edge_staged_pieces')::int AS heap, (SELECT count(*)::int FROM edge_staged_pieces) AS n`,
      );
      assert.deepEqual(written.rows[0], { heap: 0, n: 0 }, 'nothing staged on the way');
    }
    const audited = await scope.centralDb.pool.query(
      `SELECT status, pieces_sent FROM sync_piece_fetches WHERE manifest_id = $1 ORDER BY id`,
      [resumed.manifestId],
    );
    assert.ok(audited.rows.length >= 2, 'the cut fetch and the resumed one are audited');
    assert.equal(audited.rows.at(-1).status, 'served');
  });

  it('waits out a Central that is away for seconds after a cut, and finishes in the same sync', async () => {
    const { port } = new URL(scope.central.url);
    const target = { host: '127.0.0.1', port: Number(port) };
    const probe = await startLink(target, { bitsPerSecond: 0, latencyMs: 0 });
    assert.equal(
      (await testSyncer(await scope.newEdge(), probe.url, scope.mac, scope.token).run('cli')).status,
      'success',
    );
    await probe.close();
    // Cut halfway, then nothing answers for 2.5 s (Central restarting): the client's retries
    // fail, its circuit opens, and the load waits for the circuit's probe instead of failing.
    const link = await startLink(target, {
      bitsPerSecond: 2_000_000,
      latencyMs: 5,
      cutAtBytes: [Math.floor(probe.bytesDown * 0.5)],
      downForMs: 2500,
    });
    const db = await scope.newEdge();
    const result = await testSyncer(db, link.url, scope.mac, scope.token).run('cli');
    await link.close();
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.equal(link.cuts, 1);
    assert.ok(link.refused >= 5, `${link.refused} connections refused: the circuit opened`);
    assert.deepEqual(await edgeRows(db.pool), await centralScopeRows(scope.centralDb.pool, scope.mac));
  });

  it('restarts cleanly when the manifest expires mid-transfer, keeping the pieces it had', async () => {
    // A Central whose manifests live 10 s, behind a 100 kbit/s link cut once most of the way:
    // by the time the edge would resume, its manifest has expired.
    await using shortLived = await startCentral(scope.centralDb, {
      RATE_LIMIT_PER_DEVICE_PER_MINUTE: '100000',
      MANIFEST_TTL_SECONDS: '10',
    });
    const { port } = new URL(shortLived.url);
    const probe = await startLink(
      { host: '127.0.0.1', port: Number(port) },
      { bitsPerSecond: 0, latencyMs: 0 },
    );
    const probeDb = await scope.newEdge();
    assert.equal((await testSyncer(probeDb, probe.url, scope.mac, scope.token).run('cli')).status, 'success');
    await probe.close();
    const slow = await startLink(
      { host: '127.0.0.1', port: Number(port) },
      { bitsPerSecond: 100_000, latencyMs: 0, cutAtBytes: [Math.floor(probe.bytesDown * 0.8)] },
    );
    const db = await scope.newEdge();
    const syncer = testSyncer(db, slow.url, scope.mac, scope.token);
    const expired = await syncer.run('cli');
    await slow.close();
    assert.equal(expired.status, 'failed');
    assert.equal(expired.error?.code, 'MANIFEST_EXPIRED', expired.error?.message);
    const held = await db.pool.query('SELECT count(*)::int AS n FROM users');
    assert.equal(held.rows[0].n, 0, 'nothing loaded');
    const staged = await db.pool.query('SELECT count(*)::int AS n FROM edge_staged_pieces');
    assert.ok(staged.rows[0].n > 0, 'the pieces received are kept');
    // Read back out of the failed load's transaction, every piece that arrived hashed to its id.
    assert.equal(staged.rows[0].n, expired.transfer?.piecesFetched, 'every piece that arrived is kept');

    const next = await testSyncer(db, shortLived.url, scope.mac, scope.token).run('cli');
    assert.equal(next.status, 'success', JSON.stringify(next.error));
    assert.notEqual(next.manifestId, expired.manifestId);
    assert.equal(next.transfer?.piecesReused, staged.rows[0].n, 'a new manifest, the same pieces');
    assert.deepEqual(await edgeRows(db.pool), await centralScopeRows(scope.centralDb.pool, scope.mac));
  });

  it('refuses piece runs past the table, even on a Central that no longer has its pieces', async () => {
    const db = await scope.newEdge();
    assert.equal(
      (await testSyncer(db, scope.central.url, scope.mac, scope.token).run('cli')).status,
      'success',
    );
    const { rows } = await scope.centralDb.pool.query<{ manifest_id: string }>(
      'SELECT manifest_id FROM sync_manifest_headers ORDER BY generated_at DESC LIMIT 1',
    );
    // A fresh Central has no piece lists cached, and the edit makes the users table's gone.
    await using fresh = await startCentral(scope.centralDb, { RATE_LIMIT_PER_DEVICE_PER_MINUTE: '100000' });
    await EDITS[0]!(scope.centralDb, scope.mac, 'runs');
    const res = await fetch(`${fresh.url}/api/device-sync/pieces`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${scope.token}` },
      body: JSON.stringify({
        mac: scope.mac,
        manifestId: rows[0]!.manifest_id,
        want: { users: [[0, 2_000_000_000]] },
      }),
    });
    assert.equal(res.status, 400, await res.clone().text());
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'INVALID_INPUT');
  });

  it('fetches a corrupted piece again, and only that piece', async () => {
    const proxy: FaultProxy = await startFaultProxy(scope.central.url);
    try {
      proxy.fault = { kind: 'corrupt-piece', times: 1 };
      const db = await scope.newEdge();
      const result = await testSyncer(db, proxy.url, scope.mac, scope.token).run('cli');
      assert.equal(result.status, 'success', JSON.stringify(result.error));
      assert.equal(result.transfer?.piecesRefetched, 1);
      assert.equal(result.transfer?.fetches, 2);
      assert.deepEqual(await edgeRows(db.pool), await centralScopeRows(scope.centralDb.pool, scope.mac));
    } finally {
      await proxy.close();
    }
  });

  it('ends a delta sync byte-identical to a full one, for random edits of every table', async () => {
    const deltaDb = await scope.newEdge();
    const fullDb = await scope.newEdge();
    const delta = testSyncer(deltaDb, scope.central.url, scope.mac, scope.token);
    const full = testSyncer(fullDb, scope.central.url, scope.mac, scope.token);
    assert.equal((await delta.run('cli')).status, 'success');
    let patched = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: EDITS.length - 1 }), fc.integer({ min: 1, max: 1e9 })), {
          minLength: 1,
          maxLength: 6,
        }),
        async (edits) => {
          for (const [op, seed] of edits) await EDITS[op]!(scope.centralDb, scope.mac, String(seed));
          const d = await delta.run('cli');
          const f = await full.run('cli', { full: true });
          assert.equal(d.status === 'failed', false, JSON.stringify(d.error));
          assert.equal(f.status === 'failed', false, JSON.stringify(f.error));
          const expected = await centralScopeRows(scope.centralDb.pool, scope.mac);
          assert.deepEqual(await edgeRows(deltaDb.pool), expected);
          assert.deepEqual(await edgeRows(fullDb.pool), expected);
          assert.deepEqual(d.tables, f.tables);
          if (d.status === 'success') {
            // Only changed pieces travel: never more than a full load, and far fewer when few changed.
            assert.ok(d.transfer!.piecesFetched <= f.transfer!.piecesFetched);
            if (d.transfer!.piecesKept > 0) patched++;
          }
        },
      ),
      { numRuns: 12, seed: 17, endOnFailure: true },
    );
    assert.ok(patched > 0, 'some syncs patched tables instead of reloading them');
  });

  it('patches a table whose whole pieces left the scope, in the middle and at the end', async () => {
    const db = await scope.newEdge();
    const syncer = testSyncer(db, scope.central.url, scope.mac, scope.token);
    assert.equal((await syncer.run('cli')).status, 'success');
    const { rows: held } = await db.pool.query<{ last_key: string }>(
      `SELECT last_key FROM edge_held_pieces WHERE table_name = 'users' ORDER BY ord`,
    );
    assert.ok(held.length >= 5, `${held.length} pieces of users`);
    // Every member of piece 2 and of the last piece leaves the location's groups: the piece
    // after piece 2 keeps its rows but not its lower bound, and the table loses its tail.
    const leave = (after: string, last: string | null) =>
      scope.centralDb.pool.query(
        `DELETE FROM group_users WHERE user_id > $1::uuid AND ($2::uuid IS NULL OR user_id <= $2::uuid)`,
        [after, last],
      );
    await leave(held[1]!.last_key, held[2]!.last_key);
    await leave(held.at(-2)!.last_key, null);
    const result = await syncer.run('cli');
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.deepEqual(await edgeRows(db.pool), await centralScopeRows(scope.centralDb.pool, scope.mac));
    assert.ok(result.transfer!.piecesKept > 0, 'the other pieces stayed in place');
  });

  it('sends one changed user of thousands as one piece, and writes only its rows', async () => {
    const db = await scope.newEdge();
    const syncer = testSyncer(db, scope.central.url, scope.mac, scope.token);
    assert.equal((await syncer.run('cli')).status, 'success');
    await EDITS[0]!(scope.centralDb, scope.mac, 'one');
    const result = await syncer.run('cli');
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.deepEqual(result.tablesLoaded, ['users']);
    assert.equal(result.transfer?.piecesFetched, 1);
    assert.ok(result.rowsLoaded < USERS / 4, `${result.rowsLoaded} rows loaded`);
    assert.equal(result.transfer?.rowsDeleted, result.rowsLoaded, 'the old rows of the piece, no more');
    assert.deepEqual(await edgeRows(db.pool), await centralScopeRows(scope.centralDb.pool, scope.mac));
  });
});

type Edit = (db: TestDatabase, mac: string, seed: string) => Promise<unknown>;

/** A user in the device's scope, picked by seed. */
const SCOPE_USER = `(SELECT gu.user_id FROM group_users gu JOIN location_groups lg ON lg.group_id = gu.group_id
   JOIN devices d ON d.location_id = lg.location_id WHERE d.mac = $1::macaddr ORDER BY md5(gu.user_id::text || $2) LIMIT 1)`;
const SCOPE_GROUP = `(SELECT lg.group_id FROM location_groups lg JOIN devices d ON d.location_id = lg.location_id
   WHERE d.mac = $1::macaddr ORDER BY md5(lg.group_id::text || $2) LIMIT 1)`;
const LOCATION = `(SELECT location_id FROM devices WHERE mac = $1::macaddr)`;
const COMPANY = `(SELECT l.company_id FROM locations l JOIN devices d ON d.location_id = l.id WHERE d.mac = $1::macaddr)`;

const q =
  (sql: string): Edit =>
  (db, mac, seed) =>
    db.pool.query(sql, [mac, seed]);

/** Edits of every table of the scope; each keeps Central's foreign keys. */
const EDITS: Edit[] = [
  q(`UPDATE users SET display_name = display_name || ' ' || $2, updated_at = now() WHERE id = ${SCOPE_USER}`),
  q(`WITH u AS (INSERT INTO users (id, company_id, email, display_name, is_active, settings, created_at, updated_at)
       VALUES (gen_random_uuid(), ${COMPANY}, 'new' || $2 || '@example.com', 'New ' || $2, true, '{"k": [1, null]}', now(), now())
       RETURNING id)
     INSERT INTO group_users SELECT ${SCOPE_GROUP}, id FROM u`),
  q(`WITH victim AS (SELECT ${SCOPE_USER} AS id), gone AS (DELETE FROM group_users WHERE user_id = (SELECT id FROM victim))
     DELETE FROM users WHERE id = (SELECT id FROM victim)`),
  q(`DELETE FROM group_users WHERE (group_id, user_id) = (SELECT gu.group_id, gu.user_id FROM group_users gu
       WHERE gu.group_id = ${SCOPE_GROUP} ORDER BY md5(gu.user_id::text || $2) LIMIT 1)`),
  q(`INSERT INTO group_users SELECT ${SCOPE_GROUP}, u.id FROM users u WHERE u.company_id = ${COMPANY}
       ORDER BY md5(u.id::text || $2) LIMIT 3 ON CONFLICT DO NOTHING`),
  // A sixth of the key space leaves the scope at once: whole pieces of users vanish, not single rows.
  q(`DELETE FROM group_users WHERE group_id IN (SELECT lg.group_id FROM location_groups lg WHERE lg.location_id = ${LOCATION})
       AND user_id::text >= substr('0123456789abcdef', get_byte(decode(md5($2), 'hex'), 0) % 13 + 1, 1)
       AND user_id::text < substr('0123456789abcdef', get_byte(decode(md5($2), 'hex'), 0) % 13 + 4, 1)`),
  q(`UPDATE groups SET name = name || ' ' || $2, updated_at = now() WHERE id = ${SCOPE_GROUP}`),
  q(`WITH g AS (INSERT INTO groups (id, company_id, name, created_at, updated_at)
       VALUES (gen_random_uuid(), ${COMPANY}, 'Group ' || $2, now(), now()) RETURNING id),
     lg AS (INSERT INTO location_groups SELECT ${LOCATION}, id FROM g)
     INSERT INTO group_users SELECT g.id, u.id FROM g, users u WHERE u.company_id = ${COMPANY}
       ORDER BY md5(u.id::text || $2) LIMIT 50`),
  q(`DELETE FROM location_groups WHERE (location_id, group_id) = (${LOCATION}, ${SCOPE_GROUP})
       AND (SELECT count(*) FROM location_groups WHERE location_id = ${LOCATION}) > 2`),
  q(`INSERT INTO areas (id, location_id, name, floor, size_sqm, created_at, updated_at)
       VALUES (gen_random_uuid(), ${LOCATION}, 'Area ' || $2, 3, 12.5, now(), now())`),
  q(`UPDATE areas SET size_sqm = coalesce(size_sqm, 0) + 1, updated_at = now() WHERE id =
       (SELECT id FROM areas WHERE location_id = ${LOCATION} ORDER BY md5(id::text || $2) LIMIT 1)`),
  q(
    `DELETE FROM areas WHERE id = (SELECT id FROM areas WHERE location_id = ${LOCATION} ORDER BY md5(id::text || $2) LIMIT 1)`,
  ),
  q(`UPDATE companies SET name = name || ' ' || $2, updated_at = now() WHERE id = ${COMPANY}`),
  q(`UPDATE locations SET address = $2, updated_at = now() WHERE id = ${LOCATION}`),
  q(`UPDATE devices SET name = 'device ' || $2, updated_at = now() WHERE mac = $1::macaddr`),
];
