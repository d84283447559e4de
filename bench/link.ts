/**
 * `npm run bench:link [-- --users 100000 --mbit 2 --latency 300 --cut-every 30 --attempts 8]`:
 * a first sync over a simulated field link (scripts/lib/link.ts: bandwidth towards the edge,
 * latency each way, every connection cut every N seconds), once clean and once with the
 * cuts, syncing again after each failure as the schedule would. Reports the bytes that
 * crossed the link against one clean transfer, the attempts, fetches and the time; then, on
 * the clean edge, one user of the scope edited and synced again: the bytes over the link and
 * the rows the edge wrote for that delta.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { centralMigrations } from '../src/central/migrations.ts';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { generateSigningKeys } from '../src/contract/signing.ts';
import { loadEdgeConfig } from '../src/edge/config.ts';
import { prepareEdgeDatabase } from '../src/edge/migrations.ts';
import { createSyncer } from '../src/edge/syncer.ts';
import { createPool } from '../src/platform/db.ts';
import { startEmbeddedCluster } from '../src/platform/embedded.ts';
import { migrate } from '../src/platform/migrate.ts';
import { startLink, type Link } from '../scripts/lib/link.ts';
import type { Syncer } from '../src/edge/sync/run.ts';
import type { SyncResult } from '../src/edge/model.ts';
import { warmCompileCache } from './image.ts';
import { seedOneLocation, startCentralProcess } from './lib/central.ts';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '100000' },
    mbit: { type: 'string', default: '2' },
    latency: { type: 'string', default: '300' },
    'cut-every': { type: 'string', default: '30' },
    attempts: { type: 'string', default: '8' },
  },
});
warmCompileCache();
const users = Number(values.users);
const link = {
  bitsPerSecond: Number(values.mbit) * 1e6,
  latencyMs: Number(values.latency),
  cutEveryMs: Number(values['cut-every']) * 1000,
};
const attempts = Math.max(1, Math.min(50, Number(values.attempts)));
const keys = generateSigningKeys();
const dir = await mkdtemp(join(tmpdir(), 'dbupdate-link-'));
const [centralPg, edgePg] = await Promise.all([
  startEmbeddedCluster({ dataDir: dir, name: 'central' }),
  startEmbeddedCluster({ dataDir: dir, name: 'edge' }),
]);
try {
  const centralUrl = await centralPg.createDatabase('central');
  const pool = createPool(centralUrl, { max: 4, applicationName: 'bench' });
  await migrate(pool, await centralMigrations());
  const seeded = await seedOneLocation(pool, users);
  const mac = seeded.devices[0]!.mac;
  const { secret } = await enrollDevice(pool, mac);
  await pool.end();
  const central = await startCentralProcess({
    CENTRAL_DATABASE_URL: centralUrl,
    MANIFEST_SIGNING_KEY: keys.privateKey,
    LOG_LEVEL: 'error',
  });
  const port = Number(new URL(central.url).port);

  /** One user of the scope edited on Central, as an operator would. */
  async function editOneUser(): Promise<void> {
    const edit = createPool(centralUrl, { max: 1, applicationName: 'bench-edit' });
    await edit.query(
      `UPDATE users SET display_name = display_name || ' (edited)', updated_at = now()
        WHERE id = (SELECT user_id FROM group_users ORDER BY user_id LIMIT 1 OFFSET 4242)`,
    );
    await edit.end();
  }

  /** First syncs of a new edge over the link until one succeeds or `attempts` ran. */
  async function firstSync(
    name: string,
    cutEveryMs: number,
    then?: (syncer: Syncer, road: Link) => Promise<object>,
  ) {
    const road = await startLink({ host: '127.0.0.1', port }, { ...link, cutEveryMs });
    const edgeUrl = await edgePg.createDatabase(name, { replace: true });
    const edgePool = createPool(edgeUrl, { max: 3, applicationName: 'bench-edge' });
    await prepareEdgeDatabase(edgePool, undefined);
    const config = loadEdgeConfig({
      EDGE_DATABASE_URL: edgeUrl,
      CENTRAL_URL: road.url,
      DEVICE_MAC: mac,
      DEVICE_TOKEN: secret,
      MANIFEST_PUBLIC_KEYS: keys.publicKey,
      HTTP_STALL_TIMEOUT_SECONDS: '120',
      HTTP_RETRY_ATTEMPTS: '0',
    });
    const syncer = createSyncer(config, edgePool, pino({ level: 'silent' }));
    const started = performance.now();
    const tries: string[] = [];
    let transfer: SyncResult['transfer'];
    for (let i = 0; i < attempts; i++) {
      const result = await syncer.run('manual');
      tries.push(result.status === 'failed' ? `failed ${result.error?.code}` : result.status);
      transfer = result.transfer;
      if (result.status !== 'failed') break;
    }
    const out = {
      attempts: tries,
      completed: tries.at(-1) !== undefined && !tries.at(-1)!.startsWith('failed'),
      seconds: Math.round((performance.now() - started) / 100) / 10,
      mibOverLink: Math.round((road.bytesDown / 2 ** 20) * 100) / 100,
      bytesOverLink: road.bytesDown,
      cuts: road.cuts,
      transfer,
      ...(then ? { next: await then(syncer, road) } : {}),
    };
    await road.close();
    await edgePool.end();
    return out;
  }

  const clean = await firstSync('edge_clean', 0, async (syncer, road) => {
    await editOneUser();
    const before = road.bytesDown;
    const delta = await syncer.run('manual');
    return {
      oneUserEdited: {
        bytesOverLink: road.bytesDown - before,
        status: delta.status,
        tablesLoaded: delta.tablesLoaded,
        rowsWritten: delta.rowsLoaded,
        rowsDeleted: delta.transfer?.rowsDeleted,
        transfer: delta.transfer,
      },
    };
  });
  const cut = await firstSync('edge_cut', link.cutEveryMs);
  central.child.kill('SIGTERM');
  console.log(
    JSON.stringify(
      {
        users: seeded.counts.users,
        link: {
          mbit: Number(values.mbit),
          latencyMs: link.latencyMs,
          cutEverySeconds: link.cutEveryMs / 1000,
        },
        clean,
        withCuts: { ...cut, bytesVsClean: Math.round((cut.mibOverLink / clean.mibOverLink) * 100) / 100 },
      },
      null,
      2,
    ),
  );
} finally {
  await Promise.all([centralPg.stop(), edgePg.stop()]);
  await rm(dir, { recursive: true, force: true });
}
