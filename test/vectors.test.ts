/**
 * contract §3 golden vectors: the real scope and snapshot code, on a real database
 * loaded from test/vectors/scope-v1.json, reproduce every canonical line,
 * table hash and the global hash byte for byte — directly and over HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { globalSha256 } from '../src/contract/canonical.ts';
import { COPY_SESSION_SETTINGS_SQL } from '../src/contract/tables.ts';
import { findDeviceByMac } from '../src/central/sync/repo/devices.ts';
import { setScopeAndReadVersion } from '../src/central/sync/repo/scope.ts';
import { computeDigests } from '../src/central/sync/snapshot-body.ts';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { readWholeSnapshot, requestSnapshot } from './helpers/snapshot.ts';
import { insertRows, scopeV1 } from './helpers/vectors.ts';

describe('scope-v1 vectors', () => {
  let db: TestDatabase;
  let central: RunningCentral;
  let token: string;

  before(async () => {
    db = await createTestDatabase('central');
    await insertRows(db.pool, scopeV1.rows);
    token = (await enrollDevice(db.pool, scopeV1.device.mac)).secret;
    central = await startCentral(db);
  });
  after(async () => {
    await central?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  it('reproduces every canonical line, table hash and the global hash', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query(COPY_SESSION_SETTINGS_SQL);
      const device = await findDeviceByMac(client, scopeV1.device.mac);
      assert.ok(device);
      assert.deepEqual(
        { companyId: device.companyId, locationId: device.locationId, deviceId: device.id },
        scopeV1.expected.filters,
      );
      await setScopeAndReadVersion(client, device);
      const lines: Record<string, string[]> = {};
      const digests = await computeDigests(client, (table, line) => (lines[table] ??= []).push(line));
      // Without a line callback the hasher takes its byte path, which must agree.
      const fromBytes = await computeDigests(client);
      await client.query('COMMIT');
      assert.deepEqual(fromBytes, digests);
      for (const expected of scopeV1.expected.tables) {
        assert.deepEqual(lines[expected.name] ?? [], expected.lines, `lines of ${expected.name}`);
      }
      assert.deepEqual(
        digests,
        scopeV1.expected.tables.map(({ name, rowCount, sha256 }) => ({ name, rowCount, sha256 })),
      );
      assert.equal(globalSha256(digests), scopeV1.expected.globalSha256);
    } finally {
      client.release();
    }
  });

  it('serves the same manifest over HTTP, for any common spelling of the MAC', async () => {
    for (const mac of ['48:b0:2d:e9:c3:b7', '48-B0-2D-E9-C3-B7', '48b02de9c3b7']) {
      const res = await requestSnapshot(central.url, { mac }, token);
      assert.equal(res.status, 200, mac);
      const snapshot = await readWholeSnapshot(res.body!);
      const { manifest } = snapshot;
      assert.equal(manifest.globalSha256, scopeV1.expected.globalSha256);
      assert.deepEqual(manifest.filters, scopeV1.expected.filters);
      assert.deepEqual(
        manifest.tables,
        scopeV1.expected.tables.map(({ name, rowCount, sha256 }) => ({ name, rowCount, sha256 })),
      );
      assert.equal(manifest.schemaVersion, 1);
      assert.match(manifest.manifestId, /^[0-9A-HJKMNP-TV-Z]{26}$/);
      assert.equal(Date.parse(manifest.expiresAt) - Date.parse(manifest.generatedAt), 15 * 60 * 1000);
      assert.deepEqual(
        snapshot.tables.map((t) => [t.name, t.rowCount, t.copyText.split('\n').length - 1]),
        scopeV1.expected.tables.map((t) => [t.name, t.rowCount, t.rowCount]),
      );
    }
  });

  it('keeps the difference between JSON null and SQL NULL, and a literal \\N text, on the wire', async () => {
    await db.pool.query(
      `UPDATE users SET settings = 'null'::jsonb, phone = '\\N' WHERE id = '3d6f5b0e-0000-4000-8000-000000000002'`,
    );
    try {
      const res = await requestSnapshot(central.url, { mac: scopeV1.device.mac }, token);
      const snapshot = await readWholeSnapshot(res.body!);
      const users = snapshot.tables.find((t) => t.name === 'users')!;
      const row = users.copyText
        .split('\n')
        .find((l) => l.startsWith('3d6f5b0e-0000-4000-8000-000000000002'))!;
      const fields = row.split('\t');
      assert.equal(fields[4], '\\\\N', 'text that is literally \\N is escaped, not NULL');
      assert.equal(fields[7], 'null', 'JSON null stays JSON null');
      const plain = users.copyText
        .split('\n')
        .find((l) => l.startsWith('3d6f5b0e-0000-4000-8000-000000000001'))!;
      assert.equal(plain.split('\t')[4], '\\N', 'SQL NULL is \\N');
    } finally {
      await db.pool.query(
        `UPDATE users SET settings = '{}', phone = '+1 555 0100' WHERE id = '3d6f5b0e-0000-4000-8000-000000000002'`,
      );
    }
  });
});
