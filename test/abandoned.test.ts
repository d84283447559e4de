/** Audit rows a dead Central left 'started' are closed by the next Central that starts. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { loadCentralConfig } from '../src/central/config.ts';
import { startCentralServer } from '../src/central/server.ts';
import { createTestDatabase } from './helpers/db.ts';
import { quietLog } from './helpers/edge.ts';
import { TEST_KEYS } from './helpers/keys.ts';

it('closes the request rows of a Central that died mid-request, and only those', async () => {
  await using db = await createTestDatabase('central');
  await db.pool.query(
    `INSERT INTO sync_requests (mac, status, requested_at) VALUES
       ('02:01:00:00:00:01', 'started', now() - interval '2 hours'),
       ('02:01:00:00:00:02', 'started', now() - interval '5 minutes')`,
  );
  const server = await startCentralServer(
    loadCentralConfig({
      CENTRAL_DATABASE_URL: db.url,
      PORT: '0',
      HOST: '127.0.0.1',
      MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey,
      ABANDONED_REQUEST_SECONDS: '3600',
    }),
    quietLog,
  );
  try {
    const { rows } = await db.pool.query(
      'SELECT mac, status, completed_at IS NOT NULL AS closed, reason FROM sync_requests ORDER BY mac',
    );
    assert.equal(rows[0].status, 'aborted');
    assert.equal(rows[0].closed, true);
    assert.match(rows[0].reason, /Central stopped before it finished/);
    assert.deepEqual(
      { status: rows[1].status, closed: rows[1].closed },
      { status: 'started', closed: false },
      'a recent row may still be a live request',
    );
  } finally {
    await server.stop();
  }
});
