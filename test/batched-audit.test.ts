/**
 * The audit statements batched across requests (platform/batcher.ts, services/audit-store.ts):
 * each caller gets its own result, one bad item fails alone, and a batch writes exactly
 * what the same requests would have written one by one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Batcher } from '../src/platform/batcher.ts';
import { startRequests } from '../src/central/sync/repo/requests.ts';
import { createAuditStore } from '../src/central/sync/audit-store.ts';
import { seedOneScope } from './helpers/central.ts';
import { createTestDatabase } from './helpers/db.ts';

describe('Batcher', () => {
  it('runs the first item at once and the ones that came meanwhile together, each answered its own', async () => {
    const runs: number[][] = [];
    const batcher = new Batcher(
      async (items: readonly number[]) => {
        runs.push([...items]);
        await new Promise((r) => setTimeout(r, 20));
        return items.map((i) => i * 10);
      },
      { maxItems: 3, concurrency: 1 },
    );
    const results = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => batcher.add(i)));
    assert.deepEqual(results, [10, 20, 30, 40, 50, 60]);
    assert.deepEqual(runs, [[1], [2, 3, 4], [5, 6]]);
  });

  it('starts runs minGapMs apart, so fast statements still go in batches, and never holds a full batch', async () => {
    const runs: { items: number[]; at: number }[] = [];
    const t0 = performance.now();
    const batcher = new Batcher(
      async (items: readonly number[]) => {
        runs.push({ items: [...items], at: performance.now() - t0 });
        return items;
      },
      { maxItems: 4, concurrency: 1, minGapMs: 100 },
    );
    const first = batcher.add(1); // an idle batcher runs it at once
    await first;
    // Five items come one by one, each after the last run finished: they wait for the gap
    // together; the fourth fills a batch, which goes at once; the fifth waits on.
    const rest = [2, 3, 4, 5, 6].map((i) => batcher.add(i));
    await Promise.all(rest);
    assert.deepEqual(
      runs.map((r) => r.items),
      [[1], [2, 3, 4, 5], [6]],
    );
    assert.ok(runs[0]!.at < 50, `the first item ran at once (${runs[0]!.at} ms)`);
    assert.ok(runs[1]!.at < 50, `a full batch did not wait for the gap (${runs[1]!.at} ms)`);
    assert.ok(runs[2]!.at - runs[1]!.at >= 95, `the last one waited for the gap (${runs[2]!.at} ms)`);
  });

  it('fails only the bad item of a batch when the database blames the data', async () => {
    const batcher = new Batcher(
      async (items: readonly string[]) => {
        if (items.includes('bad')) throw Object.assign(new Error('invalid input'), { code: '22P02' });
        return items.map((s) => s.toUpperCase());
      },
      { maxItems: 10, concurrency: 1 },
    );
    const settled = await Promise.allSettled(['a', 'b', 'bad', 'c'].map((s) => batcher.add(s)));
    assert.deepEqual(
      settled.map((s) => (s.status === 'fulfilled' ? s.value : 'rejected')),
      ['A', 'B', 'rejected', 'C'],
    );
  });

  it('fails the whole batch, without retrying item by item, when the database itself fails', async () => {
    let calls = 0;
    const batcher = new Batcher(
      async () => {
        calls++;
        await new Promise((r) => setTimeout(r, 5));
        throw Object.assign(new Error('connection terminated'), { code: '57P01' });
      },
      { maxItems: 10, concurrency: 1 },
    );
    const settled = await Promise.allSettled([1, 2, 3, 4].map((i) => batcher.add(i)));
    assert.ok(settled.every((s) => s.status === 'rejected'));
    assert.equal(calls, 2, 'one run for the first item, one for the three that waited');
  });
});

describe('batched audit statements', () => {
  it('gives every request of a batch its own audit row, twins included, and finishes each with its own outcome', async () => {
    await using db = await createTestDatabase('central');
    const device = await seedOneScope(db, 5);
    const origin = { mac: device.mac, remoteAddr: '127.0.0.1', schemaVersion: 1, softwareVersion: 'x' };
    const started = await startRequests(db.pool, [
      origin,
      { ...origin, mac: '02:00:00:00:99:99' },
      origin,
      { ...origin, remoteAddr: null, schemaVersion: null, softwareVersion: null },
    ]);
    assert.equal(new Set(started.map((s) => s.requestId)).size, 4);
    assert.deepEqual(
      started.map((s) => s.found?.device.mac ?? null),
      [device.mac, null, device.mac, device.mac],
    );
    const audit = createAuditStore(db.pool);
    const statuses = ['unchanged', 'unknown_device', 'aborted', 'served'] as const;
    await Promise.all(started.map((s, i) => audit.finishRequest(s.requestId, { status: statuses[i]! })));
    const { rows } = await db.pool.query<{ id: string; status: string; remote_addr: string | null }>(
      'SELECT id::text, status, remote_addr FROM sync_requests WHERE id = ANY($1::bigint[])',
      [started.map((s) => s.requestId)],
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    assert.deepEqual(
      started.map((s) => byId.get(s.requestId)?.status),
      ['unchanged', 'unknown_device', 'aborted', 'served'],
    );
    assert.equal(byId.get(started[3]!.requestId)?.remote_addr, null);
  });

  it('gives every piece fetch of a batch its own row, and finishes each with its own outcome', async () => {
    await using db = await createTestDatabase('central');
    const audit = createAuditStore(db.pool);
    const fetch = { manifestId: '01JTEST', mac: '02:00:00:00:00:01', requested: 3 };
    const inputs = [fetch, { ...fetch, requested: 5 }, fetch, { ...fetch, mac: '02:00:00:00:00:02' }];
    const ids = await Promise.all(inputs.map((f) => audit.startPieceFetch(f)));
    assert.equal(new Set(ids).size, 4);
    const { rows: started } = await db.pool.query<{ id: string; mac: string; pieces_requested: number }>(
      `SELECT id::text, mac, pieces_requested FROM sync_piece_fetches WHERE status = 'started'`,
    );
    const byId = new Map(started.map((r) => [r.id, r]));
    assert.deepEqual(
      ids.map((id) => [byId.get(id)?.mac, byId.get(id)?.pieces_requested]),
      inputs.map((f) => [f.mac, f.requested]),
    );
    await Promise.all(
      ids.map((id, i) =>
        audit.finishPieceFetch(id, {
          status: i === 1 ? 'refused' : 'served',
          errorCode: i === 1 ? 'MANIFEST_EXPIRED' : null,
          deviceId: null,
          sent: i,
          gone: 0,
          bytes: 100 * i,
        }),
      ),
    );
    const { rows } = await db.pool.query<{
      id: string;
      status: string;
      pieces_sent: number;
      bytes_sent: string;
    }>('SELECT id::text, status, pieces_sent, bytes_sent::text FROM sync_piece_fetches');
    const done = new Map(rows.map((r) => [r.id, r]));
    assert.deepEqual(
      ids.map((id) => [done.get(id)?.status, done.get(id)?.pieces_sent, done.get(id)?.bytes_sent]),
      [
        ['served', 0, '0'],
        ['refused', 1, '100'],
        ['served', 2, '200'],
        ['served', 3, '300'],
      ],
    );
  });
});
