/**
 * One hostile client must not deny service to the fleet: budgets that only a proven
 * device can spend, a per-source budget for everything else, and credential checks that
 * cannot take the thread pool that compression needs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CredentialVerifier, hashSecret, verifySecret } from '../src/central/sync/credentials.ts';
import { seedEnrolledDevices, startCentral } from './helpers/central.ts';
import { hashSecretScrypt } from './helpers/credentials.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

describe('abuse by one client', () => {
  let central: TestDatabase;
  let tokens: Map<string, string>;
  let macs: string[];

  before(async () => {
    central = await createTestDatabase('central');
    ({ macs, tokens } = await seedEnrolledDevices(central, {
      companies: 1,
      locationsPerCompany: 1,
      devicesPerLocation: 3,
      usersPerCompany: 10,
    }));
  });
  after(async () => {
    await central[Symbol.asyncDispose]();
  });

  const ask = async (url: string, body: unknown, token?: string) => {
    const res = await fetch(`${url}/api/device-sync/request`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, retryAfter: res.headers.get('retry-after'), text };
  };

  it("cannot spend the fleet's overall budget with junk", async () => {
    await using api = await startCentral(central, { RATE_LIMIT_GLOBAL_PER_MINUTE: '3' });
    for (let i = 0; i < 40; i++) assert.equal((await ask(api.url, { mac: 'nope' })).status, 400);
    for (let i = 0; i < 10; i++)
      assert.equal((await ask(api.url, { mac: macs[1] }, 'dbu1_wrong')).status, 401);
    for (const mac of macs) assert.equal((await ask(api.url, { mac }, tokens.get(mac))).status, 200, mac);
  });

  it("cannot spend a device's budget by naming its MAC without its credential", async () => {
    await using api = await startCentral(central, { RATE_LIMIT_PER_DEVICE_PER_MINUTE: '2' });
    const victim = macs[0]!;
    for (let i = 0; i < 30; i++) {
      const answer = await ask(api.url, { mac: victim }, i % 2 === 0 ? undefined : 'dbu1_not-the-credential');
      assert.equal(answer.status, 401);
    }
    assert.equal((await ask(api.url, { mac: victim }, tokens.get(victim))).status, 200);
    assert.equal((await ask(api.url, { mac: victim }, tokens.get(victim))).status, 200);
    // Its own third request in the minute is what its budget refuses.
    const third = await ask(api.url, { mac: victim }, tokens.get(victim));
    assert.equal(third.status, 429);
    assert.ok(Number(third.retryAfter) > 0);
  });

  it('limits any one source address, before authentication, with Retry-After', async () => {
    await using api = await startCentral(central, { RATE_LIMIT_PER_SOURCE_PER_MINUTE: '5' });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await ask(api.url, { mac: 'nope' })).status);
    assert.deepEqual(statuses, [400, 400, 400, 400, 400, 429, 429]);
    const refused = await ask(api.url, { mac: 'nope' });
    assert.match(refused.text, /"code":"RATE_LIMITED"/);
    assert.ok(Number(refused.retryAfter) > 0);
  });

  describe('credential checks', () => {
    it('run a bounded number at once and shed the rest as OVERLOADED', async () => {
      const stored = await hashSecretScrypt('dbu1_the-real-one');
      const verifier = new CredentialVerifier({ maxEntries: 100, ttlMs: 60_000, concurrency: 1, queue: 1 });
      const attempts = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) => verifier.verify(`dbu1_wrong-${i}`, stored)),
      );
      const shed = attempts.filter((a) => a.status === 'rejected');
      assert.equal(attempts.filter((a) => a.status === 'fulfilled').length, 2, 'one running, one queued');
      assert.equal(shed.length, 4);
      for (const a of shed) assert.equal((a as PromiseRejectedResult).reason.code, 'OVERLOADED');
    });

    it('verify a SHA-256 credential in place and a legacy scrypt one still, refusing wrong ones', async () => {
      const fast = await hashSecret('dbu1_new-one');
      assert.match(fast, /^sha256\$[A-Za-z0-9_-]{43}$/);
      const legacy = await hashSecretScrypt('dbu1_old-one');
      // No check slot at all: only the SHA-256 form can be answered.
      const verifier = new CredentialVerifier({ maxEntries: 100, ttlMs: 60_000, concurrency: 1, queue: 0 });
      assert.equal(await verifySecret('dbu1_new-one', fast), true);
      assert.equal(await verifySecret('dbu1_new-onf', fast), false);
      assert.equal(await verifySecret('dbu1_old-one', legacy), true);
      assert.equal(await verifySecret('dbu1_old-onf', legacy), false);
      const many = await Promise.all(
        Array.from({ length: 20 }, (_, i) => verifier.verify(`dbu1_x${i}`, fast)),
      );
      assert.deepEqual(new Set(many), new Set([false]), 'twenty wrong SHA-256 checks at once: none shed');
    });

    it('remember a refused credential, so a repeat costs no scrypt', async () => {
      const stored = await hashSecretScrypt('dbu1_the-real-one');
      const verifier = new CredentialVerifier({ maxEntries: 100, ttlMs: 60_000, concurrency: 1, queue: 0 });
      assert.equal(await verifier.verify('dbu1_wrong', stored), false);
      // With the only check slot taken, a check that needed scrypt would be shed.
      const busy = verifier.verify('dbu1_other-wrong', stored);
      assert.equal(await verifier.verify('dbu1_wrong', stored), false);
      await assert.rejects(verifier.verify('dbu1_third-wrong', stored), { code: 'OVERLOADED' });
      assert.equal(await busy, false);
      assert.equal(await verifier.verify('dbu1_the-real-one', stored), true);
    });
  });
});
