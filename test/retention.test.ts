/**
 * Audit retention: `dbupdate central prune-audit --days N` removes requests, manifests
 * (with their table rows) and acknowledgements older than N days, in batches, and
 * leaves everything newer exactly as it was.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { Fixture } from './helpers/fixtures.ts';

const MAC = '02:00:00:00:ee:01';

describe('audit retention', () => {
  let db: TestDatabase;

  async function counts() {
    const { rows } = await db.pool.query<Record<string, number>>(
      `SELECT (SELECT count(*) FROM sync_requests)::int AS requests,
              (SELECT count(*) FROM sync_manifest_headers)::int AS manifests,
              (SELECT count(*) FROM sync_manifests)::int AS "tableRows",
              (SELECT count(*) FROM sync_acknowledgements)::int AS acks,
              (SELECT min(requested_at) > now() - interval '30 days' FROM sync_requests)::int AS "requestsRecent",
              (SELECT min(generated_at) > now() - interval '30 days' FROM sync_manifest_headers)::int AS "manifestsRecent"`,
    );
    return rows[0]!;
  }

  before(async () => {
    db = await createTestDatabase('central');
    const f = new Fixture(db.pool);
    const location = await f.location(await f.company('Old Co'), 'Site');
    const device = await f.device(location, MAC);
    // 60 days of history, one manifest (two table rows, one ack) and two requests a day.
    await db.pool.query(
      `INSERT INTO sync_manifest_headers
       SELECT 'M' || lpad(d::text, 3, '0'), $1::uuid, $2::macaddr, now() - d * interval '1 day',
              now() - d * interval '1 day' + interval '1 hour', 1, md5(d::text), '{}'
         FROM generate_series(0, 59) d`,
      [device, MAC],
    );
    await db.pool.query(
      `INSERT INTO sync_manifests SELECT manifest_id, generated_at, t, o, 1, md5(t), '{}'
         FROM sync_manifest_headers, (VALUES ('companies', 0), ('devices', 7)) v(t, o)`,
    );
    await db.pool.query(
      `INSERT INTO sync_acknowledgements (manifest_id, mac, completed_at, result, duration_ms, device_counts_json, device_hashes_json)
       SELECT manifest_id, mac, generated_at, 'Success', 10, '{}', '{}' FROM sync_manifest_headers`,
    );
    await db.pool.query(
      `INSERT INTO sync_requests (mac, requested_at, status)
       SELECT $1, now() - d * interval '1 day' - h * interval '1 hour', 'served'
         FROM generate_series(0, 59) d, generate_series(0, 1) h`,
      [MAC],
    );
  });
  after(async () => {
    await db?.[Symbol.asyncDispose]();
  });

  function prune(args: string[]): Promise<{ code: number | null; out: string }> {
    const child = spawn(process.execPath, ['bin/dbupdate.ts', 'central', 'prune-audit', ...args], {
      env: { PATH: process.env.PATH ?? '', CENTRAL_DATABASE_URL: db.url, LOG_LEVEL: 'warn' },
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out })));
  }

  it('refuses to run without a retention period, changing nothing', async () => {
    const before = await counts();
    const run = await prune([]);
    assert.equal(run.code, 2, run.out);
    assert.match(run.out, /USAGE/);
    assert.deepEqual(await counts(), before);
  });

  it('deletes what is older than the period, in batches, and keeps the rest', async () => {
    const run = await prune(['--days', '30', '--batch', '7']);
    assert.equal(run.code, 0, run.out);
    const result = JSON.parse(run.out.trim().split('\n').at(-1)!) as Record<string, number>;
    // Days 30..59 are older than 30 days (day 30 by a hair); 0..29 stay.
    assert.deepEqual(
      {
        requests: result.requests,
        manifests: result.manifests,
        acks: result.acks,
        tableRows: result.tableRows,
      },
      { requests: 60, manifests: 30, acks: 30, tableRows: 60 },
    );
    assert.deepEqual(await counts(), {
      requests: 60,
      manifests: 30,
      tableRows: 60,
      acks: 30,
      requestsRecent: 1,
      manifestsRecent: 1,
    });
    const again = await prune(['--days', '30']);
    assert.match(again.out, /"requests":0,"manifests":0,"acks":0,"tableRows":0/);
  });
});
