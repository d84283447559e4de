/**
 * A slice of `npm run fuzz` on every run: malformed requests to every endpoint of both
 * services answer with a documented status and shape, never a 500, and both stay up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fuzzCases, judge, sendCase, type FuzzCase } from '../bench/fuzz-cases.ts';
import { startEdge, type RunningEdge } from '../src/edge/server.ts';
import { startCentral, seedOneScope, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { edgeConfig, quietLog } from './helpers/edge.ts';

describe('fuzzing both services', () => {
  let central: TestDatabase;
  let edgeDb: TestDatabase;
  let api: RunningCentral;
  let edge: RunningEdge;

  before(async () => {
    central = await createTestDatabase('central');
    edgeDb = await createTestDatabase('edge');
    const device = await seedOneScope(central, 20);
    api = await startCentral(central, {
      RATE_LIMIT_PER_SOURCE_PER_MINUTE: '1000000',
      RATE_LIMIT_PER_DEVICE_PER_MINUTE: '100000',
    });
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

  it('answers 1,500 malformed requests as documented, with no 500', async () => {
    const cases = [...fuzzCases(1500, 20261202, ['central', 'edge'])];
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
    // Both still serve.
    assert.equal((await fetch(`${api.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${edge.url}/healthz`)).status, 200);
  });
});
