/**
 * Real TLS on loopback, with certificates made here by openssl: Central serves HTTPS and
 * reloads its certificate on SIGHUP; the edge syncs through a pinned CA, refuses a
 * certificate that does not chain to it, and refuses plain http:// to another host.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { loadCentralConfig } from '../src/central/config.ts';
import { startCentralServer, type RunningCentralServer } from '../src/central/server.ts';
import { loadEdgeConfig } from '../src/edge/config.ts';
import { readTls } from '../src/platform/tls.ts';
import { seedOneScope } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { edgeRows, centralScopeRows, quietLog, testSyncer } from './helpers/edge.ts';
import { TEST_KEYS } from './helpers/keys.ts';

const dir = mkdtempSync(join(tmpdir(), 'dbupdate-tls-'));
const path = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });

/** A CA, and a certificate for 127.0.0.1 and localhost signed by it. */
function makeCa(name: string): void {
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    path(`${name}.key`),
    '-out',
    path(`${name}.pem`),
  );
}
function makeServerCert(ca: string, out: string): void {
  openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-subj',
    '/CN=central',
    '-keyout',
    path(`${out}.key`),
    '-out',
    path(`${out}.csr`),
  );
  writeFileSync(path(`${out}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    'x509',
    '-req',
    '-in',
    path(`${out}.csr`),
    '-CA',
    path(`${ca}.pem`),
    '-CAkey',
    path(`${ca}.key`),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    path(`${out}.ext`),
    '-out',
    path(`${out}.pem`),
  );
}

/** The fingerprint of the certificate a TLS server presents now. */
function servedFingerprint(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      resolve(new X509Certificate(socket.getPeerX509Certificate()!.raw).fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

describe('TLS', () => {
  let central: TestDatabase;
  let server: RunningCentralServer;
  let device: { mac: string; token: string };

  before(async () => {
    makeCa('ca');
    makeCa('other-ca');
    makeServerCert('ca', 'central');
    makeServerCert('ca', 'renewed');
    central = await createTestDatabase('central');
    device = await seedOneScope(central, 50);
    writeFileSync(path('live.pem'), readFileSync(path('central.pem')));
    writeFileSync(path('live.key'), readFileSync(path('central.key')));
    server = await startCentralServer(
      loadCentralConfig({
        CENTRAL_DATABASE_URL: central.url,
        PORT: '0',
        HOST: '127.0.0.1',
        MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey,
        TLS_CERT_FILE: path('live.pem'),
        TLS_KEY_FILE: path('live.key'),
      }),
      quietLog,
    );
  });
  after(async () => {
    await server?.stop();
    await central?.[Symbol.asyncDispose]();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTPS, and an edge pinned to its CA syncs through it', async () => {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    await using edge = await createTestDatabase('edge');
    const result = await testSyncer(edge, server.url, device.mac, device.token, {
      CENTRAL_CA_FILE: path('ca.pem'),
    }).run('cli');
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.deepEqual(await edgeRows(edge.pool), await centralScopeRows(central.pool, device.mac));
  });

  it('refuses a Central whose certificate does not chain to the pinned CA, at once, naming the file', async () => {
    await using edge = await createTestDatabase('edge');
    const started = performance.now();
    const result = await testSyncer(edge, server.url, device.mac, device.token, {
      CENTRAL_CA_FILE: path('other-ca.pem'),
      HTTP_RETRY_ATTEMPTS: '3',
    }).run('cli');
    assert.equal(result.status, 'failed');
    assert.equal(result.error?.code, 'CENTRAL_UNREACHABLE');
    assert.match(result.error!.message, /not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    assert.ok(
      result.error!.message.includes(`does not chain to the CA in CENTRAL_CA_FILE (${path('other-ca.pem')})`),
    );
    assert.doesNotMatch(result.error!.message, /use-system-ca/);
    // No retries: a certificate does not mend itself (before, four attempts with backoff).
    assert.ok(performance.now() - started < 1500, `${Math.round(performance.now() - started)} ms`);
    assert.equal((await edge.pool.query('SELECT count(*)::int AS n FROM users')).rows[0].n, 0);
  });

  it('refuses at start a CA file holding a private key, or no certificate', () => {
    const env = {
      EDGE_DATABASE_URL: 'postgres://u@h/db',
      CENTRAL_URL: server.url,
      DEVICE_MAC: device.mac,
      DEVICE_TOKEN: device.token,
      MANIFEST_PUBLIC_KEYS: TEST_KEYS.publicKey,
    };
    writeFileSync(
      path('ca-and-key.pem'),
      readFileSync(path('ca.pem')) + readFileSync(path('ca.key')).toString(),
    );
    assert.throws(() => loadEdgeConfig({ ...env, CENTRAL_CA_FILE: path('ca-and-key.pem') }), {
      code: 'CONFIG_INVALID',
      message: /CENTRAL_CA_FILE \(.*ca-and-key\.pem\) holds a private key/,
    });
    assert.throws(() => loadEdgeConfig({ ...env, CENTRAL_CA_FILE: path('central.csr') }), {
      code: 'CONFIG_INVALID',
      message: /holds no PEM certificate/,
    });
    assert.ok(loadEdgeConfig({ ...env, CENTRAL_CA_FILE: path('ca.pem') }).centralCa);
  });

  it('says to use https:// when plain HTTP reaches the TLS port', async () => {
    await using edge = await createTestDatabase('edge');
    const result = await testSyncer(
      edge,
      server.url.replace('https:', 'http:'),
      device.mac,
      device.token,
    ).run('cli');
    assert.equal(result.error?.code, 'CENTRAL_UNREACHABLE');
    assert.match(result.error!.message, /use https:\/\/ in CENTRAL_URL/);
  });

  it('serves a renewed certificate after SIGHUP, and keeps the old one after a bad renewal', async () => {
    const before = await servedFingerprint(server.url);
    assert.equal(before, new X509Certificate(readFileSync(path('central.pem'))).fingerprint256);
    writeFileSync(path('live.pem'), readFileSync(path('renewed.pem')));
    writeFileSync(path('live.key'), readFileSync(path('renewed.key')));
    process.kill(process.pid, 'SIGHUP');
    await new Promise((r) => setTimeout(r, 200));
    const renewed = await servedFingerprint(server.url);
    assert.equal(renewed, new X509Certificate(readFileSync(path('renewed.pem'))).fingerprint256);
    writeFileSync(path('live.pem'), 'not a certificate');
    process.kill(process.pid, 'SIGHUP');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await servedFingerprint(server.url), renewed);
  });

  it('refuses plain http:// to another host unless allowed for a lab', () => {
    const env = {
      EDGE_DATABASE_URL: 'postgres://u@h/db',
      DEVICE_MAC: device.mac,
      DEVICE_TOKEN: device.token,
      MANIFEST_PUBLIC_KEYS: TEST_KEYS.publicKey,
    };
    assert.throws(() => loadEdgeConfig({ ...env, CENTRAL_URL: 'http://central.example.com' }), {
      code: 'CONFIG_INVALID',
      message: /CENTRAL_URL is plain http:\/\/ to central\.example\.com.*https:\/\//,
    });
    assert.ok(
      loadEdgeConfig({ ...env, CENTRAL_URL: 'http://central.example.com', ALLOW_INSECURE_HTTP: 'true' }),
    );
    assert.ok(loadEdgeConfig({ ...env, CENTRAL_URL: 'http://127.0.0.1:8080' }));
    assert.ok(loadEdgeConfig({ ...env, CENTRAL_URL: 'https://central.example.com' }));
  });

  it('refuses a certificate without its key, and files that are not PEM', () => {
    const base = { CENTRAL_DATABASE_URL: 'postgres://u@h/db', MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey };
    assert.throws(() => loadCentralConfig({ ...base, TLS_CERT_FILE: path('central.pem') }), {
      code: 'CONFIG_INVALID',
      message: /go together/,
    });
    assert.throws(() => readTls({ certFile: path('central.csr'), keyFile: path('central.key') }), {
      code: 'CONFIG_INVALID',
      message: /not a PEM certificate and its key/,
    });
    assert.throws(() => readTls({ certFile: path('missing.pem'), keyFile: path('central.key') }), {
      code: 'CONFIG_INVALID',
      message: /cannot be read/,
    });
  });
});
