/**
 * The deployment advice of the README, followed literally: Central served by a
 * least-privilege role (deploy/central/api-role.sql), and an edge reaching Central
 * behind a reverse proxy that serves it under a path prefix.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { loadCentralConfig } from '../src/central/config.ts';
import { startCentralServer, type RunningCentralServer } from '../src/central/server.ts';
import { startCentral, seedOneScope, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { edgeRows, centralScopeRows, quietLog, testSyncer } from './helpers/edge.ts';
import { TEST_KEYS } from './helpers/keys.ts';

describe('deployment as documented', () => {
  let central: TestDatabase;
  let device: { mac: string; token: string };

  before(async () => {
    central = await createTestDatabase('central');
    device = await seedOneScope(central, 30);
  });
  after(async () => {
    await central[Symbol.asyncDispose]();
  });

  it('serves with a role that may only read the data and write the audit', async () => {
    const role = `api_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(9).toString('base64url');
    await central.pool.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    let server: RunningCentralServer | undefined;
    await using edge = await createTestDatabase('edge');
    try {
      const grants = readFileSync('deploy/central/api-role.sql', 'utf8').replaceAll('dbupdate_api', role);
      await central.pool.query(grants);
      const url = new URL(central.url);
      url.username = role;
      url.password = password;
      server = await startCentralServer(
        loadCentralConfig({
          CENTRAL_DATABASE_URL: url.toString(),
          PORT: '0',
          HOST: '127.0.0.1',
          LOG_LEVEL: 'silent',
          MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey,
        }),
        quietLog,
      );
      const result = await testSyncer(edge, server.url, device.mac, device.token).run('cli');
      assert.equal(result.status, 'success', JSON.stringify(result.error));
      assert.deepEqual(await edgeRows(edge.pool), await centralScopeRows(central.pool, device.mac));
      const { rows } = await central.pool.query<{ status: string; result: string | null }>(
        `SELECT r.status, a.result FROM sync_requests r
           LEFT JOIN sync_acknowledgements a ON a.manifest_id = r.manifest_id
          WHERE r.manifest_id = $1`,
        [result.manifestId],
      );
      assert.deepEqual(rows, [{ status: 'served', result: 'Success' }]);
      // A device's own report is stored through that role too.
      const reported = await fetch(`${server.url}/api/device-sync/request`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${device.token}` },
        body: JSON.stringify({
          mac: device.mac,
          report: { failure: { code: 'LOAD_FAILED', message: 'disk full', at: new Date().toISOString() } },
        }),
      });
      assert.equal(reported.status, 200, await reported.clone().text());
      await reported.arrayBuffer();
      const stored = await central.pool.query('SELECT failure_code FROM device_reports');
      assert.deepEqual(stored.rows, [{ failure_code: 'LOAD_FAILED' }]);
      // And the role really is that narrow: it cannot change the data it serves.
      const asRole = new pg.Client({ connectionString: url.toString() });
      await asRole.connect();
      try {
        await assert.rejects(
          asRole.query(`UPDATE users SET display_name = 'x'`),
          /permission denied for table users/,
        );
      } finally {
        await asRole.end();
      }
    } finally {
      await server?.stop();
      await central.pool.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });

  describe('behind a reverse proxy at a path prefix', () => {
    let api: RunningCentral;
    let proxy: ReturnType<typeof createServer>;
    let proxyUrl: string;
    const seen: string[] = [];

    before(async () => {
      api = await startCentral(central);
      const target = new URL(api.url);
      // Forwards /dbupdate/… to Central's /…, as nginx's `location /dbupdate/ { proxy_pass …/; }`.
      proxy = createServer((req, res) => {
        seen.push(req.url ?? '');
        if (!req.url?.startsWith('/dbupdate/')) {
          res.writeHead(404).end();
          return;
        }
        const upstream = request(
          {
            host: target.hostname,
            port: target.port,
            method: req.method,
            path: req.url.slice('/dbupdate'.length),
            headers: req.headers,
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        req.pipe(upstream);
      }).listen(0, '127.0.0.1');
      await new Promise((r) => proxy.once('listening', r));
      proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/dbupdate`;
    });
    after(async () => {
      proxy.close();
      await api[Symbol.asyncDispose]();
    });

    for (const suffix of ['', '/']) {
      it(`keeps the prefix of CENTRAL_URL${suffix ? ' (with a trailing slash)' : ''}`, async () => {
        await using edge = await createTestDatabase('edge');
        const result = await testSyncer(edge, proxyUrl + suffix, device.mac, device.token).run('cli');
        assert.equal(result.status, 'success', JSON.stringify(result.error));
        assert.ok(seen.includes('/dbupdate/api/device-sync/request'), seen.join(', '));
        assert.ok(seen.includes('/dbupdate/api/device-sync/ack'), seen.join(', '));
      });
    }
  });
});
