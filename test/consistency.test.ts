/**
 * A snapshot is one point in time: while a writer commits batches into the device's
 * scope, every snapshot holds each batch wholly or not at all, and the rows served
 * hash to exactly what its manifest says.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { Fixture } from './helpers/fixtures.ts';
import { assertRowsMatchManifest, readWholeSnapshot } from './helpers/snapshot.ts';

const MAC = '02:00:00:00:10:01';
const BATCH = 25;

describe('snapshot consistency under concurrent writes', () => {
  let db: TestDatabase;
  let central: RunningCentral;
  let token: string;
  let company: string;
  let group: string;

  before(async () => {
    db = await createTestDatabase('central');
    const f = new Fixture(db.pool);
    company = await f.company('Busy Co');
    const location = await f.location(company, 'Busy site');
    group = await f.group(company, 'everyone', [location]);
    await f.device(location, MAC);
    await db.pool.query(
      `INSERT INTO users (id, company_id, email, display_name, is_active, created_at, updated_at)
       SELECT md5('base' || n)::uuid, $1, 'base-' || n || '@busy', 'Base ' || n, true, now(), now()
         FROM generate_series(1, 5000) n`,
      [company],
    );
    await db.pool.query(`INSERT INTO group_users SELECT $1, id FROM users WHERE email LIKE 'base-%'`, [
      group,
    ]);
    token = (await enrollDevice(db.pool, MAC)).secret;
    central = await startCentral(db);
  });
  after(async () => {
    await central?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  async function slowSnapshot() {
    const res = await fetch(`${central.url}/api/device-sync/request`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${token}`,
        'accept-encoding': 'identity',
      },
      body: JSON.stringify({ mac: MAC }),
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    async function* slowly() {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
        await new Promise((r) => setTimeout(r, 3));
      }
    }
    return readWholeSnapshot(slowly());
  }

  it('holds whole batches only, and its hashes match its rows', async () => {
    let writing = true;
    let batches = 0;
    const writer = (async () => {
      const deadline = Date.now() + 15_000;
      while (writing && batches < 400 && Date.now() < deadline) {
        const client = await db.pool.connect();
        try {
          await client.query('BEGIN');
          const k = batches + 1;
          await client.query(
            `INSERT INTO users (id, company_id, email, display_name, is_active, created_at, updated_at)
             SELECT md5('b' || $2 || '-' || n)::uuid, $1, 'batch-' || $2 || '-' || n || '@busy', 'B', true, now(), now()
               FROM generate_series(1, ${BATCH}) n`,
            [company, k],
          );
          await client.query(
            `INSERT INTO group_users SELECT $1, id FROM users WHERE email LIKE 'batch-' || $2 || '-%'`,
            [group, k],
          );
          await client.query(`UPDATE users SET updated_at = now() WHERE email = 'base-' || $1 || '@busy'`, [
            k,
          ]);
          await client.query('COMMIT');
          batches = k;
        } finally {
          client.release();
        }
      }
    })();

    const snapshots = [];
    /** Per snapshot: batches committed when its request went out, and when its last byte was read. */
    const windows: { sentAt: number; readAt: number }[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        const sentAt = batches;
        snapshots.push(await slowSnapshot());
        windows.push({ sentAt, readAt: batches });
      }
    } finally {
      writing = false;
      await writer;
    }
    assert.ok(batches > 3, `the writer committed ${batches} batches during the snapshots`);

    const seen = new Set<number>();
    const newest: number[] = [];
    for (const s of snapshots) {
      assertRowsMatchManifest(s);
      const users = s.tables
        .find((t) => t.name === 'users')!
        .copyText.split('\n')
        .filter(Boolean);
      const perBatch = new Map<number, number>();
      for (const line of users) {
        const m = /\tbatch-(\d+)-\d+@busy\t/.exec(line);
        if (m) perBatch.set(Number(m[1]), (perBatch.get(Number(m[1])) ?? 0) + 1);
      }
      for (const [batch, count] of perBatch) {
        assert.equal(count, BATCH, `batch ${batch} is whole`);
        seen.add(batch);
      }
      const maxBatch = Math.max(0, ...perBatch.keys());
      assert.equal(perBatch.size, maxBatch, 'batches are a prefix: no commit skipped');
      newest.push(maxBatch);
      const memberships = s.tables
        .find((t) => t.name === 'group_users')!
        .copyText.split('\n')
        .filter(Boolean);
      assert.equal(memberships.length, users.length, 'every user served with its membership');
    }
    assert.ok(seen.size > 0, 'some snapshot saw writer batches');
    // Commits landed while snapshots were being read, and those snapshots did not see them:
    // each holds at least what was committed before its request and misses what came after.
    snapshots.forEach((_, i) =>
      assert.ok(newest[i]! >= windows[i]!.sentAt, JSON.stringify({ newest, windows })),
    );
    const overtaken = windows.filter((w, i) => newest[i]! < w.readAt);
    assert.ok(
      overtaken.length > 0,
      `a commit landed during a snapshot: ${JSON.stringify({ newest, windows })}`,
    );
  });
});
