/**
 * A slice of `npm run fuzz` on every run: malformed requests to every endpoint of both
 * services answer with a documented status and shape, never a 500, and both stay up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fuzzCases, judge, sendCase, type FuzzCase, type FuzzWorld } from '../bench/fuzz-cases.ts';
import { prepareFuzzWorld } from '../bench/fuzz-world.ts';
import { startEdge, type RunningEdge } from '../src/edge/server.ts';
import { startCentral, seedEnrolledDevices, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { edgeConfig, quietLog } from './helpers/edge.ts';

const ADMIN_TOKEN = 'fuzz-admin-token-0123456789abcdef';

describe('fuzzing both services', () => {
  let central: TestDatabase;
  let edgeDb: TestDatabase;
  let api: RunningCentral;
  let edge: RunningEdge;
  let world: FuzzWorld;

  before(async () => {
    central = await createTestDatabase('central');
    edgeDb = await createTestDatabase('edge');
    const { macs, tokens } = await seedEnrolledDevices(central, {
      companies: 1,
      locationsPerCompany: 3,
      usersPerCompany: 40,
      devicesPerLocation: 2,
    });
    const device = { mac: macs[0]!, token: tokens.get(macs[0]!)! };
    api = await startCentral(central, {
      RATE_LIMIT_PER_SOURCE_PER_MINUTE: '1000000',
      RATE_LIMIT_PER_DEVICE_PER_MINUTE: '100000',
      ADMIN_TOKEN: ADMIN_TOKEN,
    });
    world = await prepareFuzzWorld(central.pool, api.url, ADMIN_TOKEN, [device.mac]);
    edge = await startEdge(
      edgeConfig(edgeDb, api.url, device.mac, device.token, {
        PORT: '0',
        HOST: '127.0.0.1',
        SYNC_INTERVAL_SECONDS: '3600',
      }),
      quietLog,
    );
  });
  after(async () => {
    await edge?.stop();
    await api?.[Symbol.asyncDispose]();
    await edgeDb?.[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
  });

  it('answers 1,500 malformed requests to every endpoint, as every kind of caller, as documented, with no 500', async () => {
    const cases = [...fuzzCases(1500, 20261202, ['central', 'edge'], world)];
    const problems: string[] = [];
    const statuses = new Map<number, number>();
    const run = async (c: FuzzCase) => {
      const answer = await sendCase(c.target === 'central' ? api.url : edge.url, c);
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      const problem = judge(c, answer);
      if (problem) problems.push(`${c.target} ${c.method} ${c.path.slice(0, 60)}: ${problem}`);
    };
    for (let i = 0; i < cases.length; i += 8) await Promise.all(cases.slice(i, i + 8).map(run));
    assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems`);
    assert.ok(!statuses.has(500));
    // The slice reaches the endpoints the fuzz was blind to, past their validation.
    const reached = new Set(
      cases.map((c) => c.path.split('?')[0]!.replace(/\/[0-9a-f:]{17}(?=\/|$)/, '/{mac}')),
    );
    for (const path of [
      '/api/device-sync/pieces',
      '/api/admin/devices/enroll',
      '/api/admin/devices/{mac}/revoke',
    ])
      assert.ok(reached.has(path), `the slice sends to ${path}`);
    assert.ok((statuses.get(200) ?? 0) > 50, `answers that got through: ${JSON.stringify([...statuses])}`);
    // Both still serve.
    assert.equal((await fetch(`${api.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${edge.url}/healthz`)).status, 200);
  });
});
