/**
 * Hostile and heavy input: random bodies, headers and MAC spellings never produce a
 * 500 or an undocumented shape; 50 devices at once plus repeated acks are each
 * audited exactly once, without deadlock.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { ackSuccess, readWholeSnapshot, requestSnapshot } from './helpers/snapshot.ts';
import { waitFor } from './helpers/wait.ts';

const DOCUMENTED = new Set([200, 400, 401, 403, 404, 413, 415, 429]);

describe('robustness', () => {
  let db: TestDatabase;
  let api: RunningCentral;
  let macs: string[];
  const tokens = new Map<string, string>();
  /** Requests the first test sent: each leaves exactly one audit row. */
  let sent = 0;

  before(async () => {
    db = await createTestDatabase('central');
    const seeded = await seedCentral(
      db.pool,
      { ...DEFAULT_SHAPE, companies: 5, locationsPerCompany: 5, devicesPerLocation: 2, usersPerCompany: 100 },
      { reset: false },
    );
    const { rows } = await db.pool.query<{ mac: string }>(
      'SELECT mac::text AS mac FROM devices ORDER BY mac LIMIT 50',
    );
    macs = rows.map((r) => r.mac);
    assert.equal(macs.length, 50, JSON.stringify(seeded.counts));
    await Promise.all(macs.map(async (m) => tokens.set(m, (await enrollDevice(db.pool, m)).secret)));
    api = await startCentral(db, {
      RATE_LIMIT_PER_DEVICE_PER_MINUTE: '100000',
      MAX_CONCURRENT_SNAPSHOTS: '64',
      BODY_LIMIT_BYTES: '2048',
    });
  });
  after(async () => {
    await api?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  it('answers any body, header and MAC spelling with a documented status and shape', async () => {
    const macText = fc.oneof(
      fc.constantFrom(...macs.slice(0, 3)),
      fc.constantFrom(...macs.slice(0, 3)).map((m) => m.toUpperCase().replaceAll(':', '-')),
      fc.constantFrom(...macs.slice(0, 3)).map((m) => m.replaceAll(':', '')),
      fc.string({ maxLength: 40 }),
      fc.stringMatching(/^[0-9a-fA-F:.-]{0,20}$/),
    );
    const body = fc.oneof(
      macText.map((mac) => JSON.stringify({ mac })),
      fc
        .record({
          mac: macText,
          knownGlobalSha256: fc.oneof(fc.constant(null), fc.string(), fc.stringMatching(/^[0-9a-f]{64}$/)),
        })
        .map((b) => JSON.stringify(b)),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 3000 }),
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a).toString('latin1')),
    );
    const headers = fc.record(
      {
        'content-type': fc.constantFrom(
          'application/json',
          'application/json; charset=utf-8',
          'text/plain',
          'application/xml',
          '',
        ),
        authorization: fc.oneof(
          fc.constantFrom(...macs.slice(0, 3)).map((m) => `Bearer ${tokens.get(m)}`),
          fc.string({ maxLength: 60 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
          fc.constant('Bearer '),
        ),
        'accept-encoding': fc.constantFrom('gzip', 'identity', 'br', 'deflate, gzip;q=0.5', '*'),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(body, headers, async (b, h) => {
        sent++;
        const res = await fetch(`${api.url}/api/device-sync/request`, {
          method: 'POST',
          headers: Object.fromEntries(Object.entries(h).filter(([, v]) => v !== '')),
          body: b,
        });
        const text = Buffer.from(await res.arrayBuffer()).toString('utf8');
        assert.ok(DOCUMENTED.has(res.status), `status ${res.status} for ${JSON.stringify(b).slice(0, 200)}`);
        if (res.status !== 200) {
          const parsed = JSON.parse(text) as { error: { code: string; message: string } };
          assert.equal(typeof parsed.error.code, 'string');
          assert.equal(typeof parsed.error.message, 'string');
        } else {
          assert.ok(text.startsWith('{"manifest":'));
        }
      }),
      { numRuns: 300, seed: 20261127 },
    );
    // One audit row per request, each finished, and nothing failed inside Central.
    const audited = await waitFor(
      async () =>
        (
          await db.pool.query<{ n: number; open: number; errors: number }>(
            `SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'started')::int AS open,
                    count(*) FILTER (WHERE status = 'error')::int AS errors FROM sync_requests`,
          )
        ).rows[0]!,
      (a) => a.n >= sent && a.open === 0,
    );
    assert.deepEqual(audited, { n: sent, open: 0, errors: 0 });
  });

  it('serves 50 devices at once and stores repeated acks once, auditing every request once', async () => {
    // The previous test waited for its every row; this test's rows come after these.
    const before = (await db.pool.query('SELECT coalesce(max(id), 0) AS id FROM sync_requests')).rows[0].id;
    const started = Date.now();
    const manifests = await Promise.all(
      macs.map(async (m) => {
        const res = await requestSnapshot(api.url, { mac: m }, tokens.get(m));
        assert.equal(res.status, 200);
        return { mac: m, manifest: (await readWholeSnapshot(res.body!)).manifest };
      }),
    );
    const acks = manifests.flatMap(({ mac, manifest }) =>
      [1, 2, 3].map(() => ackSuccess(api.url, mac, manifest, tokens.get(mac)!).then((r) => r.status)),
    );
    assert.deepEqual(new Set(await Promise.all(acks)), new Set([200]));
    const audit = await waitFor(
      async () =>
        (
          await db.pool.query(
            `SELECT status, count(*)::int AS n, count(DISTINCT manifest_id)::int AS manifests
               FROM sync_requests WHERE id > $1 GROUP BY status`,
            [before],
          )
        ).rows,
      (rows) => rows.length === 1 && rows[0].status === 'served',
    );
    assert.deepEqual(audit, [{ status: 'served', n: 50, manifests: 50 }]);
    const ackRows = await db.pool.query(
      'SELECT count(*)::int AS n FROM sync_acknowledgements WHERE manifest_id = ANY($1)',
      [manifests.map((m) => m.manifest.manifestId)],
    );
    assert.equal(ackRows.rows[0].n, 50);
    console.log(`# 50 concurrent device requests and 150 acks in ${Date.now() - started} ms`);
  });
});
