/**
 * Larger loads: readers on the edge never see an empty or partial set of tables while
 * a load runs (and how long they wait), and a SIGKILL in the middle of a load leaves
 * the old data intact for the next sync to replace.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type { Syncer } from '../src/edge/sync/run.ts';
import { seedOneScope, startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { fingerprint, testSyncer } from './helpers/edge.ts';
import { TEST_KEYS } from './helpers/keys.ts';

const USERS = 60_000;

describe('edge under load', () => {
  let central: TestDatabase;
  let edge: TestDatabase;
  let api: RunningCentral;
  let syncer: Syncer;
  let mac: string;
  let token: string;

  before(async () => {
    central = await createTestDatabase('central');
    edge = await createTestDatabase('edge');
    ({ mac, token } = await seedOneScope(central, USERS));
    api = await startCentral(central);
    syncer = testSyncer(edge, api.url, mac, token);
    const first = await syncer.run('cli');
    assert.equal(first.status, 'success', JSON.stringify(first.error));
  });
  after(async () => {
    await api?.[Symbol.asyncDispose]();
    await edge?.[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
  });

  it('shows readers the old tables or the new ones, never an empty or partial set, without blocking them', async () => {
    await central.pool.query(
      `UPDATE users SET updated_at = now() WHERE ctid IN (SELECT ctid FROM users LIMIT 5000)`,
    );
    await central.pool.query(
      `DELETE FROM group_users WHERE ctid IN (SELECT ctid FROM group_users LIMIT 3000)`,
    );
    const before = await fingerprint(edge.pool);
    const seen = new Set<string>();
    let maxWaitMs = 0;
    let reads = 0;
    let loading = true;
    const reader = (async () => {
      const client = await edge.pool.connect();
      try {
        await client.query("SET statement_timeout = '5s'");
        while (loading && reads < 10_000) {
          const t = performance.now();
          await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
          const f = await fingerprint(client);
          await client.query('COMMIT');
          maxWaitMs = Math.max(maxWaitMs, performance.now() - t);
          seen.add(f);
          reads++;
        }
      } finally {
        client.release();
      }
    })();
    const result = await syncer.run('cli');
    loading = false;
    await reader;
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    const afterLoad = await fingerprint(edge.pool);
    assert.notEqual(afterLoad, before);
    assert.ok(reads > 3, `reader ran during the load (${reads} reads)`);
    for (const f of seen)
      assert.ok(f === before || f === afterLoad, `reader saw a state that is neither old nor new: ${f}`);
    assert.ok(
      maxWaitMs < 2000,
      `readers waited at most ${Math.round(maxWaitMs)} ms (one read of all users included)`,
    );
    console.log(
      `# readers during a ${USERS}-user load: ${reads} reads, longest ${Math.round(maxWaitMs)} ms, sync ${result.durationMs} ms`,
    );
  });

  it('keeps the old data when the edge process is killed mid-load, and the next sync succeeds', async () => {
    await central.pool.query(
      `UPDATE users SET display_name = display_name || '.', updated_at = now() WHERE ctid IN (SELECT ctid FROM users LIMIT 2000)`,
    );
    const before = await fingerprint(edge.pool);
    const child = spawn(process.execPath, ['bin/dbupdate.ts', 'edge', 'sync'], {
      env: {
        ...process.env,
        EDGE_DATABASE_URL: edge.url,
        CENTRAL_URL: api.url,
        DEVICE_MAC: mac,
        DEVICE_TOKEN: token,
        MANIFEST_PUBLIC_KEYS: TEST_KEYS.publicKey,
        LOG_LEVEL: 'warn',
        LOG_FORMAT: 'json',
      },
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    // Wait until the child is inside the load: its COPY into a data table is running.
    let copying = false;
    for (let i = 0; i < 400 && !copying; i++) {
      const { rows } = await edge.pool.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'dbupdate-cli'
            AND query LIKE 'COPY "users"%'`,
      );
      copying = rows.length > 0;
      if (!copying) await new Promise((r) => setTimeout(r, 25));
    }
    assert.ok(copying, 'caught the child in the middle of COPY');
    child.kill('SIGKILL');
    await exited;
    // The server notices the dead client and rolls back; wait for its session to end.
    for (let i = 0; i < 200; i++) {
      const { rows } = await edge.pool.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'dbupdate-cli'`,
      );
      if (rows.length === 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.equal(await fingerprint(edge.pool), before, 'old data intact after SIGKILL');
    const next = await syncer.run('cli');
    assert.equal(next.status, 'success', JSON.stringify(next.error));
    const { rows } = await edge.pool.query(
      `SELECT status, error_code FROM edge_sync_log WHERE id < $1 ORDER BY id DESC LIMIT 1`,
      [next.syncId],
    );
    assert.deepEqual(rows, [{ status: 'failed', error_code: 'SYNC_INTERRUPTED' }]);
    assert.notEqual(await fingerprint(edge.pool), before);
  });
});
