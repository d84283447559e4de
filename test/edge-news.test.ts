/**
 * What the edge tells others: a NOTIFY after each commit that changed data (naming the
 * tables that changed, and never for a sync that changed nothing), and a last-success
 * gauge that a restarted edge reads from its ledger instead of starting at 0.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { generateSigningKeys } from '../src/contract/signing.ts';
import { DATA_CHANGED_CHANNEL, type DataChanged } from '../src/edge/repo/news.ts';
import type { Syncer } from '../src/edge/sync/run.ts';
import { seedOneScope, startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { testSyncer } from './helpers/edge.ts';

describe('news for local apps', () => {
  let central: TestDatabase;
  let edgeDb: TestDatabase;
  let api: RunningCentral;
  let device: { mac: string; token: string };
  let listener: pg.Client;
  const heard: DataChanged[] = [];

  before(async () => {
    central = await createTestDatabase('central');
    edgeDb = await createTestDatabase('edge');
    device = await seedOneScope(central, 50);
    api = await startCentral(central);
    listener = new pg.Client({ connectionString: edgeDb.url });
    await listener.connect();
    listener.on('notification', (n) => {
      if (n.channel === DATA_CHANGED_CHANNEL) heard.push(JSON.parse(n.payload!) as DataChanged);
    });
    await listener.query(`LISTEN ${DATA_CHANGED_CHANNEL}`);
  });
  after(async () => {
    await listener?.end();
    await api?.[Symbol.asyncDispose]();
    await edgeDb?.[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
  });

  /** Notifications are delivered asynchronously: a round trip on the listener flushes them. */
  async function drain(): Promise<DataChanged[]> {
    await listener.query('SELECT 1');
    await new Promise((r) => setTimeout(r, 50));
    return heard.splice(0);
  }

  const newSyncer = (): Syncer => testSyncer(edgeDb, api.url, device.mac, device.token);

  it('names every table after the first load, only the changed ones after an edit, none when unchanged', async () => {
    const syncer = newSyncer();
    const first = await syncer.run('cli');
    assert.equal(first.status, 'success');
    const [news, ...more] = await drain();
    assert.deepEqual(more, []);
    assert.equal(news!.manifestId, first.manifestId);
    assert.equal(news!.tables.length, 8);

    await central.pool.query(
      `UPDATE users SET display_name = display_name || ' (edited)', updated_at = now()
        WHERE id = (SELECT min(id::text)::uuid FROM users)`,
    );
    const edited = await syncer.run('cli');
    assert.equal(edited.status, 'success');
    assert.deepEqual(
      (await drain()).map((n) => [n.manifestId, n.tables]),
      [[edited.manifestId, ['users']]],
    );

    const unchanged = await syncer.run('cli');
    assert.equal(unchanged.status, 'unchanged');
    assert.deepEqual(await drain(), []);
  });

  it('sends nothing for a sync that failed and rolled back', async () => {
    await central.pool.query(`UPDATE areas SET name = name || ' x', updated_at = now()`);
    const syncer = testSyncer(edgeDb, api.url, device.mac, device.token, {
      // A key this Central does not sign with: the manifest is refused before any row loads.
      MANIFEST_PUBLIC_KEYS: generateSigningKeys().publicKey,
    });
    const failed = await syncer.run('cli');
    assert.equal(failed.status, 'failed');
    assert.deepEqual(await drain(), []);
  });

  it('reads the last success from the ledger after a restart', async () => {
    const before = await newSyncer().run('cli');
    assert.notEqual(before.status, 'failed');
    const { rows } = await edgeDb.pool.query<{ value: string }>(
      `SELECT value FROM edge_sync_state WHERE key = 'last_check_at'`,
    );
    // A new syncer is what a restarted process builds: fresh metrics, the same ledger.
    const restarted = newSyncer();
    const text = await restarted.metrics.registry.metrics();
    const value = Number(/^dbupdate_edge_last_success_timestamp_seconds (\S+)$/m.exec(text)?.[1]);
    assert.equal(value, Date.parse(rows[0]!.value) / 1000);
  });
});
