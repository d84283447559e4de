/** Probes, OpenAPI and compression of the Central API. */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { insertRows, scopeV1 } from './helpers/vectors.ts';

function rawPost(
  url: string,
  body: string,
  headers: Record<string, string>,
): Promise<{ headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(parts) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('central http', () => {
  let db: TestDatabase;
  let central: RunningCentral;
  let token: string;
  before(async () => {
    db = await createTestDatabase('central');
    await insertRows(db.pool, scopeV1.rows);
    token = (await enrollDevice(db.pool, scopeV1.device.mac)).secret;
    central = await startCentral(db);
  });
  after(async () => {
    await central?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  it('is live and ready on a migrated database', async () => {
    assert.deepEqual(await (await fetch(`${central.url}/healthz`)).json(), { status: 'ok' });
    const ready = await fetch(`${central.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(((await ready.json()) as { status: string }).status, 'ready');
  });

  it('is not ready on a database that is not migrated, nor on one it cannot reach', async () => {
    await using empty = await createTestDatabase('central');
    await empty.pool.query('DROP TABLE dbupdate_migrations');
    const app = await startCentral(empty);
    try {
      const res = await fetch(`${app.url}/readyz`);
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'NOT_READY');
    } finally {
      await app[Symbol.asyncDispose]();
    }
    const unreachable = new pg.Pool({
      connectionString: 'postgres://x:y@127.0.0.1:1/none',
      connectionTimeoutMillis: 500,
    });
    unreachable.on('error', () => {});
    const lost = await startCentral({ ...empty, pool: unreachable });
    try {
      const res = await fetch(`${lost.url}/readyz`);
      assert.equal(res.status, 503);
      const sync = await fetch(`${lost.url}/api/device-sync/request`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ mac: scopeV1.device.mac }),
      });
      assert.equal(sync.status, 503);
      assert.equal(sync.headers.get('retry-after'), '5');
      assert.equal(((await sync.json()) as { error: { code: string } }).error.code, 'DATABASE_UNAVAILABLE');
    } finally {
      await lost[Symbol.asyncDispose]();
      await unreachable.end();
    }
  });

  it('publishes OpenAPI generated from the validating schemas, and a docs page', async () => {
    const doc = (await (await fetch(`${central.url}/openapi.json`)).json()) as {
      openapi: string;
      paths: Record<
        string,
        { post?: { requestBody?: { content: Record<string, { schema: { required?: string[] } }> } } }
      >;
    };
    assert.match(doc.openapi, /^3\./);
    const body =
      doc.paths['/api/device-sync/request']!.post!.requestBody!.content['application/json']!.schema;
    assert.deepEqual(body.required, ['mac']);
    assert.ok(doc.paths['/api/device-sync/ack']);
    const page = await fetch(`${central.url}/docs`, { redirect: 'follow' });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /swagger/i);
  });

  it('exposes Prometheus metrics without a MAC label', async () => {
    await fetch(`${central.url}/api/device-sync/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ mac: scopeV1.device.mac }),
    }).then((r) => r.arrayBuffer());
    const text = await (await fetch(`${central.url}/metrics`)).text();
    assert.match(
      text,
      /^dbupdate_central_http_requests_total\{route="\/api\/device-sync\/request",method="POST",status="200"\} [1-9]/m,
    );
    assert.match(text, /^dbupdate_central_snapshot_digest_seconds_count [1-9]/m);
    assert.doesNotMatch(text, /mac=/);
  });

  it('compresses the snapshot with gzip when asked, and not otherwise', async () => {
    const body = JSON.stringify({ mac: scopeV1.device.mac });
    const auth = { authorization: `Bearer ${token}` };
    const gz = await rawPost(`${central.url}/api/device-sync/request`, body, {
      ...auth,
      'accept-encoding': 'gzip',
    });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    const plain = await rawPost(`${central.url}/api/device-sync/request`, body, {
      ...auth,
      'accept-encoding': 'identity',
    });
    assert.equal(plain.headers['content-encoding'], undefined);
    const unzipped = gunzipSync(gz.body).toString('utf8');
    // Same rows apart from the manifest line (new manifest id and times).
    assert.equal(
      unzipped.split('\n').slice(1).join('\n'),
      plain.body.toString('utf8').split('\n').slice(1).join('\n'),
    );
  });
});
