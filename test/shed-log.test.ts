/**
 * Load shed costs a count, not a log line (issue 37): a device over its budget, asked 150
 * times, leaves one summary warning, not 150 warnings and 150 error lines.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { seedOneScope, startCentral } from './helpers/central.ts';
import { capturedLog } from './helpers/log.ts';
import { createTestDatabase } from './helpers/db.ts';

it('sums up requests turned away for load in one warning per interval', async () => {
  await using db = await createTestDatabase('central');
  const device = await seedOneScope(db, 5);
  const { logger: log, lines } = capturedLog<{
    level: number;
    event?: string;
    counts?: Record<string, number>;
  }>({
    level: 'warn',
  });
  const api = await startCentral(db, { RATE_LIMIT_PER_DEVICE_PER_MINUTE: '1' }, log);
  const statuses: number[] = [];
  for (let i = 0; i < 150; i++) {
    const res = await fetch(`${api.url}/api/device-sync/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${device.token}` },
      body: JSON.stringify({ mac: device.mac }),
    });
    await res.arrayBuffer();
    statuses.push(res.status);
  }
  await api[Symbol.asyncDispose]();
  assert.equal(statuses.filter((s) => s === 429).length, 149);
  const shed = lines.filter((l) => l.event === 'load.shed');
  assert.equal(
    shed.reduce((n, l) => n + (l.counts?.RATE_LIMITED ?? 0), 0),
    149,
  );
  assert.ok(
    lines.length <= 3,
    `${lines.length} lines at warn or above: ${JSON.stringify(lines.slice(0, 3))}`,
  );
});
