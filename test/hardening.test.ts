/**
 * What an attacker or a sloppy client sends, answered in the documented shape with no 500:
 * parser-level refusals, text Central cannot store, header spellings RFC 9110 allows, and
 * forwarded addresses believed only when configured.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { readWholeSnapshot, requestSnapshot } from './helpers/snapshot.ts';
import { insertRows, scopeV1 } from './helpers/vectors.ts';

const MAC = scopeV1.device.mac;

/** Sends raw bytes and reads the whole answer (the server closes after a parser refusal). */
function raw(url: string, bytes: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(bytes));
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
  });
}

const shapeOf = (body: string) => (JSON.parse(body) as { error: { code: string; message: string } }).error;

describe('hardening of the HTTP surface', () => {
  let db: TestDatabase;
  let central: RunningCentral;
  let token: string;
  let manifestId: string;

  before(async () => {
    db = await createTestDatabase('central');
    await insertRows(db.pool, scopeV1.rows);
    token = (await enrollDevice(db.pool, MAC)).secret;
    central = await startCentral(db);
    const res = await requestSnapshot(central.url, { mac: MAC }, token);
    manifestId = (await readWholeSnapshot(res.body!)).manifest.manifestId;
  });
  after(async () => {
    await central?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  const parserCases: [string, string, number, string][] = [
    ['a malformed request line', 'GARBAGE\r\n\r\n', 400, 'INVALID_INPUT'],
    [
      'headers over the limit',
      `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
      'HEADERS_TOO_LARGE',
    ],
    ['an undecodable URL', 'GET /api/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'INVALID_INPUT'],
    [
      'a CONNECT, as to a proxy',
      'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
      400,
      'INVALID_INPUT',
    ],
  ];
  for (const [name, bytes, status, code] of parserCases) {
    it(`answers ${name} with ${status} ${code} in the documented shape`, async () => {
      const answer = await raw(central.url, bytes);
      assert.equal(answer.status, status, answer.body);
      const error = shapeOf(answer.body);
      assert.equal(error.code, code);
      assert.ok(error.message.length > 0);
    });
  }

  it('answers bodies of several MB with the 413 itself, not a connection reset', async () => {
    const { port } = new URL(central.url);
    for (const mb of [3, 5, 10, 10, 10]) {
      const size = mb * 1024 * 1024;
      const answer = await new Promise<string>((resolve) => {
        const socket = connect(Number(port), '127.0.0.1', async () => {
          socket.write(
            `POST /api/device-sync/request HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`,
          );
          const chunk = Buffer.alloc(65_536, 'a');
          for (let sent = 0; sent < size && !socket.destroyed; sent += chunk.length) {
            if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r).once('close', r));
          }
        });
        let text = '';
        socket.on('data', (c: Buffer) => (text += c.toString()));
        socket.on('error', (err) => (text += `\n[${(err as NodeJS.ErrnoException).code}]`));
        socket.on('close', () => resolve(text));
      });
      assert.match(answer, /^HTTP\/1\.1 413 /, `${mb} MB: ${answer.slice(0, 200)}`);
      assert.equal(shapeOf(answer.slice(answer.indexOf('\r\n\r\n') + 4)).code, 'BODY_TOO_LARGE');
      assert.doesNotMatch(answer, /ECONNRESET/);
    }
  });

  it('refuses text/plain with 415, audited', async () => {
    const res = await fetch(`${central.url}/api/device-sync/request`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', authorization: `Bearer ${token}` },
      body: JSON.stringify({ mac: MAC }),
    });
    assert.equal(res.status, 415);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('accepts the bearer scheme in any case (RFC 9110)', async () => {
    const res = await fetch(`${central.url}/api/device-sync/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `bearer ${token}` },
      body: JSON.stringify({ mac: MAC, knownGlobalSha256: scopeV1.expected.globalSha256 }),
    });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });

  const ack = (patch: Record<string, unknown>) =>
    fetch(`${central.url}/api/device-sync/ack`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({
        manifestId,
        mac: MAC,
        status: 'Failed',
        localCounts: {},
        localChecksums: {},
        durationMs: 1,
        error: null,
        ...patch,
      }),
    });
  const unstorable: [string, Record<string, unknown>][] = [
    ['a NUL in the error text', { error: 'bad \u0000 byte' }],
    ['a lone surrogate in the error text', { error: 'bad \ud800 half' }],
    ['a NUL in a count key', { localCounts: { 'us\u0000ers': 1 } }],
    ['a lone surrogate in a checksum key', { localChecksums: { '\ud800': 'ab' } }],
    ['a NUL in a checksum value', { localChecksums: { users: 'a\u0000' } }],
  ];
  for (const [name, patch] of unstorable) {
    it(`refuses an ack with ${name} with 400, storing nothing`, async () => {
      const res = await ack(patch);
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'INVALID_INPUT');
      const { rows } = await db.pool.query('SELECT 1 FROM sync_acknowledgements WHERE manifest_id = $1', [
        manifestId,
      ]);
      assert.equal(rows.length, 0);
    });
  }

  it('audits a request whose MAC holds a NUL, with the text made storable', async () => {
    const res = await fetch(`${central.url}/api/device-sync/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ mac: 'ab\u0000cd' }),
    });
    assert.equal(res.status, 400);
    await res.arrayBuffer();
    const { rows } = await db.pool.query<{ mac: string }>(
      "SELECT mac FROM sync_requests WHERE status = 'invalid_input' ORDER BY id DESC LIMIT 1",
    );
    assert.deepEqual(rows, [{ mac: 'ab\ufffdcd' }]);
  });

  it('audits a refusal under the canonical MAC, whatever the spelling', async () => {
    const res = await fetch(`${central.url}/api/device-sync/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ mac: MAC.toUpperCase().replaceAll(':', '-'), extra: 1 }),
    });
    assert.equal(res.status, 400);
    await res.arrayBuffer();
    const { rows } = await db.pool.query<{ mac: string }>(
      'SELECT mac FROM sync_requests ORDER BY id DESC LIMIT 1',
    );
    assert.deepEqual(rows, [{ mac: MAC }]);
  });

  it('holds the answer to a refusal until its audit row is written', async () => {
    // While audit inserts are blocked, no answer may leave: it would tell of a row not yet there.
    const blocker = await db.pool.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE sync_requests IN SHARE MODE');
      let answered = false;
      const response = fetch(`${central.url}/api/device-sync/request`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"mac":',
      }).then(async (res) => {
        answered = true;
        await res.arrayBuffer();
        return res.status;
      });
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(answered, false, 'answered before its audit row could be written');
      await blocker.query('COMMIT');
      assert.equal(await response, 400);
      const { rows } = await db.pool.query('SELECT error_code FROM sync_requests ORDER BY id DESC LIMIT 1');
      assert.deepEqual(rows, [{ error_code: 'INVALID_INPUT' }]);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      blocker.release();
    }
  });

  describe('X-Forwarded-For', () => {
    const lastAddress = async () =>
      (
        await db.pool.query<{ remote_addr: string }>(
          'SELECT remote_addr FROM sync_requests ORDER BY id DESC LIMIT 1',
        )
      ).rows[0]!.remote_addr;
    const askWithForwarded = async (url: string) => {
      const res = await fetch(`${url}/api/device-sync/request`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.9' },
        body: JSON.stringify({ mac: 'nope' }),
      });
      await res.arrayBuffer();
    };

    it('is ignored unless TRUST_PROXY says whose to believe', async () => {
      await askWithForwarded(central.url);
      assert.equal(await lastAddress(), '127.0.0.1');
    });

    it('is believed from a configured proxy', async () => {
      await using behind = await startCentral(db, { TRUST_PROXY: '127.0.0.1' });
      await askWithForwarded(behind.url);
      assert.equal(await lastAddress(), '203.0.113.9');
    });
  });
});
