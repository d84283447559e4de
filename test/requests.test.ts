/** contract §4 refusals and acks: the documented status and code, and the right audit row. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { readWholeSnapshot, requestSnapshot } from './helpers/snapshot.ts';
import { insertRows, scopeV1 } from './helpers/vectors.ts';

const MAC = scopeV1.device.mac;
const PEER = '48:b0:2d:e9:c3:b8';
const DISABLED = '48:b0:2d:e9:c3:b9';

describe('device-sync requests', () => {
  let db: TestDatabase;
  let central: RunningCentral;
  let token: string;
  let peerToken: string;

  before(async () => {
    db = await createTestDatabase('central');
    await insertRows(db.pool, scopeV1.rows);
    token = (await enrollDevice(db.pool, MAC)).secret;
    peerToken = (await enrollDevice(db.pool, PEER)).secret;
    await enrollDevice(db.pool, DISABLED);
    central = await startCentral(db, { BODY_LIMIT_BYTES: '1024' });
  });
  after(async () => {
    await central?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  /** The newest audit row, once `count` rows exist and none is still open. */
  async function lastAudit(count?: number): Promise<{
    mac: string;
    status: string;
    error_code: string | null;
    manifest_id: string | null;
  }> {
    // The audit row of a refusal is written as the response finishes; give it a moment.
    for (let i = 0; i < 100; i++) {
      const { rows } = await db.pool.query(
        `SELECT mac, status, error_code, manifest_id, (SELECT count(*)::int FROM sync_requests) AS n,
                (SELECT count(*)::int FROM sync_requests WHERE status = 'started') AS open
           FROM sync_requests ORDER BY id DESC LIMIT 1`,
      );
      const row = rows[0];
      if (row && row.open === 0 && (count === undefined || row.n === count)) return row;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('audit row did not appear');
  }
  async function auditCount(): Promise<number> {
    return (await db.pool.query('SELECT count(*)::int AS n FROM sync_requests')).rows[0].n;
  }

  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(`${central.url}/api/device-sync/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
      body,
    });

  const cases: {
    name: string;
    send: () => Promise<Response>;
    status: number;
    code: string;
    audit: { status: string; mac?: string; error_code: string };
  }[] = [
    {
      name: 'malformed JSON',
      send: () => post('{"mac":'),
      status: 400,
      code: 'INVALID_INPUT',
      audit: { status: 'invalid_input', error_code: 'INVALID_INPUT' },
    },
    {
      name: 'missing mac',
      send: () => post('{}'),
      status: 400,
      code: 'INVALID_INPUT',
      audit: { status: 'invalid_input', error_code: 'INVALID_INPUT' },
    },
    {
      name: 'mac of the wrong type',
      send: () => post('{"mac":42}'),
      status: 400,
      code: 'INVALID_INPUT',
      audit: { status: 'invalid_input', error_code: 'INVALID_INPUT' },
    },
    {
      name: 'unknown field',
      send: () => post(`{"mac":"${MAC}","x":1}`),
      status: 400,
      code: 'INVALID_INPUT',
      audit: { status: 'invalid_input', mac: MAC, error_code: 'INVALID_INPUT' },
    },
    {
      name: 'a body that is not an object',
      send: () => post('[1,2]'),
      status: 400,
      code: 'INVALID_INPUT',
      audit: { status: 'invalid_input', error_code: 'INVALID_INPUT' },
    },
    {
      name: 'malformed MAC',
      send: () => post('{"mac":"not-a-mac"}'),
      status: 400,
      code: 'INVALID_MAC',
      audit: { status: 'invalid_input', mac: 'not-a-mac', error_code: 'INVALID_MAC' },
    },
    {
      name: 'unknown device',
      send: () => post('{"mac":"02:00:00:00:00:99"}'),
      status: 404,
      code: 'DEVICE_NOT_FOUND',
      audit: { status: 'unknown_device', mac: '02:00:00:00:00:99', error_code: 'DEVICE_NOT_FOUND' },
    },
    {
      name: 'disabled device',
      send: () => post(`{"mac":"${DISABLED.toUpperCase()}"}`),
      status: 403,
      code: 'DEVICE_DISABLED',
      audit: { status: 'disabled', mac: DISABLED, error_code: 'DEVICE_DISABLED' },
    },
    {
      name: 'no credential',
      send: () => post(`{"mac":"${MAC}"}`, { authorization: '' }),
      status: 401,
      code: 'UNAUTHENTICATED',
      audit: { status: 'unauthenticated', mac: MAC, error_code: 'UNAUTHENTICATED' },
    },
    {
      name: 'wrong credential',
      send: () => post(`{"mac":"${MAC}"}`, { authorization: 'Bearer dbu1_wrong' }),
      status: 401,
      code: 'UNAUTHENTICATED',
      audit: { status: 'unauthenticated', mac: MAC, error_code: 'UNAUTHENTICATED' },
    },
    {
      name: "another device's credential",
      send: () => post(`{"mac":"${MAC}"}`, { authorization: `Bearer ${peerToken}` }),
      status: 401,
      code: 'UNAUTHENTICATED',
      audit: { status: 'unauthenticated', mac: MAC, error_code: 'UNAUTHENTICATED' },
    },
    {
      name: 'oversized body',
      send: () => post(JSON.stringify({ mac: MAC, pad: 'x'.repeat(4096) })),
      status: 413,
      code: 'BODY_TOO_LARGE',
      audit: { status: 'invalid_input', error_code: 'BODY_TOO_LARGE' },
    },
    {
      name: 'wrong content type',
      send: () => post(`mac=${MAC}`, { 'content-type': 'application/x-www-form-urlencoded' }),
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
      audit: { status: 'invalid_input', error_code: 'UNSUPPORTED_MEDIA_TYPE' },
    },
    {
      name: 'no content type',
      send: () =>
        fetch(`${central.url}/api/device-sync/request`, { method: 'POST', body: new Uint8Array([1, 2, 3]) }),
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
      audit: { status: 'invalid_input', error_code: 'UNSUPPORTED_MEDIA_TYPE' },
    },
  ];

  for (const c of cases) {
    it(`answers ${c.name} with ${c.status} ${c.code}, audited once, nothing served`, async () => {
      const before = await auditCount();
      const manifestsBefore = (await db.pool.query('SELECT count(*)::int AS n FROM sync_manifest_headers'))
        .rows[0].n;
      const res = await c.send();
      assert.equal(res.status, c.status);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, c.code);
      assert.ok(body.error.message.length > 0);
      const audit = await lastAudit(before + 1);
      assert.equal(await auditCount(), before + 1, 'exactly one audit row');
      assert.equal(audit.status, c.audit.status);
      assert.equal(audit.error_code, c.audit.error_code);
      if (c.audit.mac) assert.equal(audit.mac, c.audit.mac);
      assert.equal(audit.manifest_id, null);
      const manifestsAfter = (await db.pool.query('SELECT count(*)::int AS n FROM sync_manifest_headers'))
        .rows[0].n;
      assert.equal(manifestsAfter, manifestsBefore, 'no manifest for a refusal');
    });
  }

  it('answers unknown routes and methods with the documented shape', async () => {
    const res = await fetch(`${central.url}/api/nope`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'ROUTE_NOT_FOUND');
  });

  it('audits a served request with its manifest and the SHA-256 of the payload', async () => {
    const res = await requestSnapshot(central.url, { mac: MAC }, token);
    const bytes = Buffer.from(await res.arrayBuffer());
    const { createHash } = await import('node:crypto');
    const audit = await lastAudit();
    assert.equal(audit.status, 'served');
    const { rows } = await db.pool.query(
      'SELECT payload_sha256, bytes_sent::int AS bytes, device_id FROM sync_requests WHERE manifest_id = $1',
      [audit.manifest_id],
    );
    assert.equal(rows[0].payload_sha256, createHash('sha256').update(bytes).digest('hex'));
    assert.equal(rows[0].bytes, bytes.length);
    assert.equal(rows[0].device_id, scopeV1.device.id);
    const tables = await db.pool.query(
      'SELECT table_name, row_count::int AS n, sha256 FROM sync_manifests WHERE manifest_id = $1 ORDER BY table_order',
      [audit.manifest_id],
    );
    assert.deepEqual(
      tables.rows.map((r) => [r.table_name, r.n, r.sha256]),
      scopeV1.expected.tables.map((t) => [t.name, t.rowCount, t.sha256]),
    );
  });

  describe('acks', () => {
    let manifestId: string;
    const ack = (body: Record<string, unknown>, bearer = token) =>
      fetch(`${central.url}/api/device-sync/ack`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
        body: JSON.stringify(body),
      });
    const good = () => ({
      manifestId,
      mac: MAC.toUpperCase(),
      status: 'Success',
      localCounts: { companies: 1 },
      localChecksums: { companies: 'ab' },
      durationMs: 12,
      error: null,
    });

    before(async () => {
      const res = await requestSnapshot(central.url, { mac: MAC }, token);
      manifestId = (await readWholeSnapshot(res.body!)).manifest.manifestId;
    });

    it('stores an ack once and answers a repeat the same', async () => {
      const first = await ack(good());
      assert.equal(first.status, 200);
      const firstBody = await first.json();
      const again = await ack({ ...good(), status: 'Failed', error: 'late retry' });
      assert.equal(again.status, 200);
      assert.deepEqual(await again.json(), firstBody);
      const { rows } = await db.pool.query(
        'SELECT result, mac::text, duration_ms FROM sync_acknowledgements WHERE manifest_id = $1',
        [manifestId],
      );
      assert.deepEqual(rows, [{ result: 'Success', mac: MAC, duration_ms: 12 }]);
    });

    it('stores one ack when the same ack arrives many times at once', async () => {
      const res = await requestSnapshot(central.url, { mac: MAC }, token);
      const id = (await readWholeSnapshot(res.body!)).manifest.manifestId;
      const answers = await Promise.all(Array.from({ length: 10 }, () => ack({ ...good(), manifestId: id })));
      assert.deepEqual(
        answers.map((a) => a.status),
        Array(10).fill(200),
      );
      const bodies = await Promise.all(answers.map((a) => a.json()));
      assert.equal(new Set(bodies.map((b) => JSON.stringify(b))).size, 1);
      const { rows } = await db.pool.query(
        'SELECT count(*)::int AS n FROM sync_acknowledgements WHERE manifest_id = $1',
        [id],
      );
      assert.equal(rows[0].n, 1);
    });

    it('refuses an unknown manifest, a foreign one, bad bodies and missing credentials', async () => {
      const expectError = async (res: Promise<Response>, status: number, code: string) => {
        const r = await res;
        assert.equal(r.status, status);
        assert.equal(((await r.json()) as { error: { code: string } }).error.code, code);
      };
      await expectError(
        ack({ ...good(), manifestId: '01ARZ3NDEKTSV4RRFFQ69G5FAV' }),
        404,
        'MANIFEST_NOT_FOUND',
      );
      // Forbidden is said only to a device that proved the MAC it claims (sync/identity.ts).
      await expectError(ack({ ...good(), mac: PEER }, peerToken), 403, 'MANIFEST_FORBIDDEN');
      await expectError(ack({ ...good(), mac: PEER }), 401, 'UNAUTHENTICATED');
      await expectError(ack({ ...good(), status: 'Maybe' }), 400, 'INVALID_INPUT');
      await expectError(ack({ ...good(), manifestId: 'nope' }), 400, 'INVALID_INPUT');
      await expectError(ack({ ...good(), durationMs: -1 }), 400, 'INVALID_INPUT');
      await expectError(ack({ ...good(), mac: 'zz' }), 400, 'INVALID_MAC');
      await expectError(ack(good(), ''), 401, 'UNAUTHENTICATED');
    });
  });
});
