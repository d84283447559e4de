/**
 * `npm run bench:preview [-- --devices 100000 --users-per-location 40]`: the release preview
 * (src/central/release/preview.ts) over a fleet in the fleet bench's shape (10 devices a
 * location, a location's own groups and users), every device holding an older version (one
 * acked manifest each in the audit, as after a day of syncs), so every location is read and
 * every device compared: the time `dbupdate central release preview` takes before an import.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { centralMigrations } from '../src/central/migrations.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { previewRelease } from '../src/central/release/preview.ts';
import { DATA_MODEL } from '../src/contract/data-model.ts';
import { TABLE_NAMES } from '../src/contract/tables.ts';
import { createPool } from '../src/platform/db.ts';
import { startEmbeddedCluster } from '../src/platform/embedded.ts';
import { migrate } from '../src/platform/migrate.ts';
import { warmCompileCache } from './image.ts';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '100000' },
    'users-per-location': { type: 'string', default: '40' },
  },
});
warmCompileCache();
const devices = Number(values.devices);
const usersPerLocation = Number(values['users-per-location']);
const dir = await mkdtemp(join(tmpdir(), 'dbupdate-preview-'));
const cluster = await startEmbeddedCluster({ dataDir: dir, name: 'pg' });
const pool = createPool(await cluster.createDatabase('central'), {
  applicationName: 'preview-bench',
  max: 4,
});
try {
  await migrate(pool, await centralMigrations());
  const seeded = performance.now();
  const locations = Math.ceil(devices / 10 / 10);
  await seedCentral(
    pool,
    {
      ...DEFAULT_SHAPE,
      companies: 10,
      locationsPerCompany: locations,
      devicesPerLocation: 10,
      usersPerCompany: usersPerLocation * locations,
      groupsPerCompany: 3 * locations,
      groupsPerLocation: 3,
      groupsPerUser: 1,
    },
    { reset: false },
  );
  await holdOlderVersions();
  console.error(`preview bench: seeded in ${Math.round(performance.now() - seeded)} ms`);
  const runs = [];
  for (let i = 0; i < 3; i++) {
    const p = await previewRelease(pool, DATA_MODEL);
    runs.push(p.tookMs);
    if (i === 0) console.error(`  ${p.devices} devices, ${p.reached} reached, ${p.firstSyncs} first syncs`);
  }
  const rssMb = Math.round(process.resourceUsage().maxRSS / 1024);
  console.log(JSON.stringify({ devices, usersPerLocation, previewMs: runs, benchPeakRssMb: rssMb }));
} finally {
  await pool.end();
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
}

/** One acked manifest per device, of an older version than Central holds (hashes that match nothing). */
async function holdOlderVersions(): Promise<void> {
  const old = `now() - interval '1 hour'`;
  await pool.query(
    `INSERT INTO sync_manifest_headers (manifest_id, device_id, mac, generated_at, expires_at, schema_version, global_sha256, filter_desc)
     SELECT 'B' || d.id, d.id, d.mac, ${old}, now(), 1, repeat('0', 64), '{}' FROM devices d`,
  );
  await pool.query(
    `INSERT INTO sync_manifests (manifest_id, generated_at, table_name, table_order, row_count, sha256, filter_desc)
     SELECT 'B' || d.id, ${old}, t.name, t.ord, 50, repeat('a', 64), '{}'
       FROM devices d CROSS JOIN unnest($1::text[]) WITH ORDINALITY AS t(name, ord)`,
    [TABLE_NAMES],
  );
  await pool.query(
    `INSERT INTO sync_requests (mac, device_id, manifest_id, status, requested_at)
     SELECT d.mac::text, d.id, 'B' || d.id, 'served', ${old} FROM devices d`,
  );
  await pool.query(
    `INSERT INTO sync_acknowledgements (manifest_id, mac, result, duration_ms, device_counts_json, device_hashes_json)
     SELECT 'B' || d.id, d.mac, 'Success', 1, '{}', '{}' FROM devices d`,
  );
  await pool.query('ANALYZE');
}
