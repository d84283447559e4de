/**
 * The sync's finish event tells its outcome on every path (issue 33): before, a failed sync
 * logged `sync.finish` with outcome "success", since a failure is a result, not a throw.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateSigningKeys } from '../src/contract/signing.ts';
import { createSyncer } from '../src/edge/syncer.ts';
import { seedOneScope, startCentral, type RunningCentral } from './helpers/central.ts';
import { capturedLog } from './helpers/log.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { edgeConfig } from './helpers/edge.ts';

describe('the sync step', () => {
  let central: TestDatabase;
  let edge: TestDatabase;
  let api: RunningCentral;
  let device: { mac: string; token: string };
  const { logger: log, lines } = capturedLog<{
    event?: string;
    outcome?: string;
    status?: string;
    code?: string;
  }>();

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

  const finishOf = () => lines.filter((l) => l.event === 'sync.finish').at(-1);

  it('finishes with outcome error and the code when the sync failed', async () => {
    const config = edgeConfig(edge, api.url, device.mac, device.token, {
      MANIFEST_PUBLIC_KEYS: generateSigningKeys().publicKey,
    });
    const result = await createSyncer(config, edge.pool, log).run('manual');
    assert.equal(result.status, 'failed');
    assert.deepEqual(
      { outcome: finishOf()?.outcome, code: finishOf()?.code, status: finishOf()?.status },
      { outcome: 'error', code: 'MANIFEST_SIGNATURE_INVALID', status: 'failed' },
    );
  });

  it('finishes with outcome success and the status otherwise', async () => {
    const config = edgeConfig(edge, api.url, device.mac, device.token);
    const result = await createSyncer(config, edge.pool, log).run('manual');
    assert.equal(result.status, 'success');
    assert.deepEqual(
      { outcome: finishOf()?.outcome, status: finishOf()?.status },
      { outcome: 'success', status: 'success' },
    );
  });
});
