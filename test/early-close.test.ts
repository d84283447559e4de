/**
 * A client that goes away while its answer waits for a slot (review of issue 32's bound):
 * its response closed before anyone listened, and its slot and device claim were never
 * given back, so the device stayed at 429, and the slot was lost, until Central restarted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { seedEnrolledDevices, startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { rawSnapshotRequest } from './helpers/snapshot.ts';

describe('a client gone before its answer', () => {
  let db: TestDatabase;
  let api: RunningCentral;
  let macs: string[];
  let tokens: Map<string, string>;

  before(async () => {
    db = await createTestDatabase('central');
    ({ macs, tokens } = await seedEnrolledDevices(db, {
      companies: 1,
      locationsPerCompany: 2,
      usersPerCompany: 20_000,
      devicesPerLocation: 1,
    }));
    api = await startCentral(db, {
      MAX_CONCURRENT_ANSWERS: '1',
      MAX_CONCURRENT_SNAPSHOTS: '1',
      SNAPSHOT_QUEUE_WAIT_MS: '5000',
      MAX_ANSWERS_PER_DEVICE: '1',
      RATE_LIMIT_PER_DEVICE_PER_MINUTE: '1000',
      SNAPSHOT_SLOW_WINDOW_SECONDS: '60',
    });
  });
  after(async () => {
    await api?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  const ask = (mac: string, opts: { read?: boolean; abortAfterMs?: number } = {}) =>
    rawSnapshotRequest(api.url, mac, tokens.get(mac), opts);

  it('gives back the slot and the claim of an answer whose client left while it waited', async () => {
    const [a, b] = [macs[0]!, macs[1]!];
    const holder = await ask(a, { read: false }); // holds the one answer slot
    assert.equal(holder.status, 200);
    const gone = ask(b, { abortAfterMs: 300 }); // waits in the queue, then leaves
    await new Promise((r) => setTimeout(r, 600));
    holder.close(); // the slot passes to the request that left
    assert.equal((await gone).status, 0);
    await new Promise((r) => setTimeout(r, 1500));
    const again = await ask(b);
    assert.equal(again.status, 200, 'neither the slot nor the claim leaked');
  });
});
