/**
 * Data-borne faults (issue 32): values the schema lets into Central that the canonical form
 * cannot carry must be refused at once and by name, never strand a snapshot session; every
 * other hostile value the schema allows must sync and verify. Either way, every other device
 * is served.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { verifyLocal } from '../src/edge/verify/local.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { centralScopeRows, edgeRows, testSyncer } from './helpers/edge.ts';
import { assertRowsMatchManifest, readWholeSnapshot } from './helpers/snapshot.ts';
import { capturedLog } from './helpers/log.ts';

describe('hostile data in Central', () => {
  let db: TestDatabase;
  let api: RunningCentral;
  const log = capturedLog();
  /** Two devices at two locations of one company: `hostile` sees the bad user, `other` does not. */
  let hostile: { mac: string; token: string; userId: string };
  let other: { mac: string; token: string };
  let scopeUserIds: string[];

  before(async () => {
    db = await createTestDatabase('central');
    const seeded = await seedCentral(
      db.pool,
      {
        ...DEFAULT_SHAPE,
        companies: 2,
        locationsPerCompany: 1,
        // Large enough that the bad row's COPY is still streaming when it fails: that is
        // what stranded a session (its ROLLBACK queued behind the COPY nobody read).
        usersPerCompany: 20_000,
        devicesPerLocation: 1,
      },
      { reset: false },
    );
    const [a, b] = seeded.devices;
    // The first user of its scope's COPY (rows travel in key order), as PostgreSQL's record text.
    const scopeUsers = (await centralScopeRows(db.pool, a!.mac)).users!;
    hostile = {
      mac: a!.mac,
      token: (await enrollDevice(db.pool, a!.mac)).secret,
      userId: scopeUsers[0]!.slice(1, 37),
    };
    scopeUserIds = scopeUsers.map((r) => r.slice(1, 37));
    other = { mac: b!.mac, token: (await enrollDevice(db.pool, b!.mac)).secret };
    api = await startCentral(
      db,
      {
        // Two sessions: a request that stranded its session would show within three requests.
        MAX_CONCURRENT_SNAPSHOTS: '2',
        MAX_CONCURRENT_ANSWERS: '2',
        SNAPSHOT_QUEUE_WAIT_MS: '0',
        RATE_LIMIT_PER_DEVICE_PER_MINUTE: '10000',
      },
      log.logger,
    );
  });
  after(async () => {
    await api?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  const ask = (device: { mac: string; token: string }, body: Record<string, unknown> = {}) =>
    fetch(`${api.url}/api/device-sync/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${device.token}` },
      body: JSON.stringify({ mac: device.mac, ...body }),
      // A stranded answer never comes: fail in seconds, not at the test's timeout.
      signal: AbortSignal.timeout(10_000),
    });

  async function strandedSessions(): Promise<number> {
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'central-snapshots'
          AND state LIKE 'idle in transaction%'`,
    );
    return rows[0]!.n;
  }

  it('answers SNAPSHOT_FAILED at once for a number no double holds, names it, and strands no session', async () => {
    await db.pool.query(`UPDATE users SET settings = '{"a": 1e400}' WHERE id = $1`, [hostile.userId]);
    for (const body of [{}, { pieces: true }, {}, { pieces: true }, {}, {}]) {
      const res = await ask(hostile, body);
      assert.equal(res.status, 500);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'SNAPSHOT_FAILED');
    }
    assert.equal(await strandedSessions(), 0, 'every session was given back');
    const named = log.lines.find(
      (l) => typeof l.err === 'object' && JSON.stringify(l.err).includes(hostile.userId),
    );
    assert.ok(named, "Central's log names the row's key");
    assert.match(JSON.stringify(named.err), /users/);
    assert.match(JSON.stringify(named.err), /settings/);
    // The device of the other location is served meanwhile.
    const res = await ask(other);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    // Once the datum is mended, the device is served again.
    await db.pool.query(`UPDATE users SET settings = '{"a": 1}' WHERE id = $1`, [hostile.userId]);
    const mended = await ask(hostile);
    assert.equal(mended.status, 200);
    await mended.arrayBuffer();
  });

  it('syncs and verifies every hostile value the schema allows', async () => {
    const values: [string, string][] = [
      ['huge number', '{"n": 1.7976931348623157e308, "m": -1e308}'],
      ['tiny number', '{"n": 1e-400, "m": 5e-324}'],
      ['long integer', '{"n": 123456789012345678901234567890}'],
      ['deep JSON', '['.repeat(500) + ']'.repeat(500)],
      [
        'odd Unicode',
        JSON.stringify({ s: '\u2028\u2029\u200b\ufeff e\u0301 \u{1f600} \u05d0\u202e', k: '\u{10ffff}' }),
      ],
      ['JSON escapes', '{"s": "tab\\tnewline\\nquote\\"backslash\\\\"}'],
    ];
    const rows = scopeUserIds.slice(1, values.length + 1).map((id) => ({ id }));
    for (const [i, [, json]] of values.entries())
      await db.pool.query('UPDATE users SET settings = $2::jsonb WHERE id = $1', [rows[i]!.id, json]);
    const long = 'x\\\t\n\r'.repeat(200_000); // a megabyte of text that COPY must escape
    await db.pool.query(
      `UPDATE users SET display_name = $2, phone = $3, employee_number = $4 WHERE id = $1`,
      [rows[0]!.id, long, '\u{1f4de} +1 555', '9223372036854775807'],
    );
    await db.pool.query(
      `UPDATE areas SET size_sqm = 'NaN', floor = -2147483648 WHERE id = (SELECT a.id FROM areas a
         JOIN devices d ON d.location_id = a.location_id WHERE d.mac = $1::macaddr ORDER BY a.id LIMIT 1)`,
      [hostile.mac],
    );
    await db.pool.query(
      `UPDATE locations SET name = $2, created_at = '4713-01-01 BC', updated_at = 'infinity'
        WHERE id = (SELECT location_id FROM devices WHERE mac = $1::macaddr)`,
      [hostile.mac, '\u202eevil\u202c name \u{1f3ed}'],
    );
    const edge = await createTestDatabase('edge');
    try {
      const result = await testSyncer(edge, api.url, hostile.mac, hostile.token).run('cli');
      assert.equal(result.status, 'success', JSON.stringify(result.error));
      assert.deepEqual(await edgeRows(edge.pool), await centralScopeRows(db.pool, hostile.mac));
      assert.deepEqual((await verifyLocal(edge.pool)).drifted, []);
    } finally {
      await edge[Symbol.asyncDispose]();
    }
    // The plain protocol (an older edge) is served the same rows, and they hash to its manifest.
    const plain = await ask(hostile);
    assert.equal(plain.status, 200);
    assertRowsMatchManifest(await readWholeSnapshot(plain.body!));
  });
});
