/**
 * Errors a fleet team met in its first week that pointed the wrong way (issue 35, finding 3),
 * each now naming its fix in one line. Each assertion failed on the code before.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { generateSigningKeys, parsePublicKeys } from '../src/contract/signing.ts';
import { loadEdgeConfig } from '../src/edge/config.ts';
import { freePort } from '../src/platform/embedded.ts';
import { seedOneScope, startCentral, type RunningCentral } from './helpers/central.ts';
import { dbupdate } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { testSyncer } from './helpers/edge.ts';
import { TEST_KEYS } from './helpers/keys.ts';

describe('errors that name their fix', () => {
  let central: TestDatabase;
  let edge: TestDatabase;
  let api: RunningCentral;
  let device: { mac: string; token: string };

  before(async () => {
    central = await createTestDatabase('central');
    edge = await createTestDatabase('edge');
    device = await seedOneScope(central, 10);
    api = await startCentral(central);
  });
  after(async () => {
    await api?.[Symbol.asyncDispose]();
    await edge?.[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
  });

  const env = () => ({
    EDGE_DATABASE_URL: edge.url,
    CENTRAL_URL: api.url,
    DEVICE_MAC: device.mac,
    DEVICE_TOKEN: device.token,
    MANIFEST_PUBLIC_KEYS: TEST_KEYS.publicKey,
  });

  it("names the manifest's key id and the ids the edge trusts", async () => {
    const other = generateSigningKeys().publicKey;
    const result = await testSyncer(edge, api.url, device.mac, device.token, {
      MANIFEST_PUBLIC_KEYS: other,
    }).run('cli');
    assert.equal(result.error?.code, 'MANIFEST_SIGNATURE_INVALID');
    const [signing] = parsePublicKeys(TEST_KEYS.publicKey).keys();
    const [trusted] = parsePublicKeys(other).keys();
    assert.ok(result.error!.message.includes(`signed with key ${signing}`), result.error!.message);
    assert.ok(result.error!.message.includes(`MANIFEST_PUBLIC_KEYS holds ${trusted}`), result.error!.message);
  });

  it('refuses an unset DEVICE_TOKEN at start, unless in MAC-only mode', () => {
    const { DEVICE_TOKEN: _token, ...without } = env();
    assert.throws(() => loadEdgeConfig(without), {
      code: 'CONFIG_INVALID',
      message: /DEVICE_TOKEN is not set: it is the line `dbupdate central enroll --mac M` printed/,
    });
    assert.ok(loadEdgeConfig({ ...without, AUTH_MODE: 'mac-only' }));
  });

  it('shows the expected MAC form, on the edge and at Central', async () => {
    assert.throws(() => loadEdgeConfig({ ...env(), DEVICE_MAC: '48:b0:2d:e9:c3' }), {
      code: 'CONFIG_INVALID',
      message: /DEVICE_MAC is invalid: "48:b0:2d:e9:c3"; expected six hex pairs, e\.g\. 48:b0:2d:e9:c3:b7/,
    });
    const res = await fetch(`${api.url}/api/device-sync/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${device.token}` },
      body: JSON.stringify({ mac: '48:b0:2d:e9:c3' }),
    });
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'INVALID_MAC');
    assert.match(body.error.message, /expected six hex pairs/);
  });

  it('says when a Central that failed repeatedly is called again', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const syncer = testSyncer(edge, closed, device.mac, device.token, { HTTP_RETRY_ATTEMPTS: '0' });
    // Five failures open the circuit (for 1-2 s first: on a slow machine the sixth run may be its
    // probe, which fails and opens it again for longer).
    let last;
    let runs = 0;
    do last = await syncer.run('cli');
    while (++runs < 8 && !/circuit open/.test(last.error?.message ?? ''));
    assert.ok(runs >= 6, `the circuit opened after ${runs - 1} failures, not 5`);
    assert.equal(last?.error?.code, 'CENTRAL_UNREACHABLE');
    assert.match(
      last!.error!.message,
      /circuit open: .*not calling it for \d+ s more \(until \d{4}-\d\d-\d\dT[\d:.]+Z\)/,
    );
  });

  it('tells the API role to prune as the owner', async () => {
    const role = `t_api_${randomBytes(4).toString('hex')}`;
    await central.pool.query(`CREATE ROLE ${role} LOGIN PASSWORD 'api-password'`);
    try {
      await central.pool.query(
        readFileSync('deploy/central/api-role.sql', 'utf8').replaceAll('dbupdate_api', role),
      );
      const url = new URL(central.url);
      [url.username, url.password] = [role, 'api-password'];
      const run = await dbupdate(['central', 'prune-audit', '--days', '1'], {
        CENTRAL_DATABASE_URL: url.href,
      });
      assert.equal(run.code, 1);
      assert.match(
        run.stderr,
        /DATABASE_ACCESS_DENIED: .*run it with CENTRAL_DATABASE_URL of the role that owns the tables/,
      );
      assert.equal(run.stdout, '', 'stdout holds results only');
    } finally {
      await central.pool.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });
});
