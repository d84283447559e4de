/**
 * One real sync by an edge running on linux/arm64 (the Jetson's architecture), emulated
 * by qemu-user: Central and both PostgreSQL clusters run natively on this machine, the
 * edge process is the arm64 Node from the npm registry running our sources as shipped
 * (scripts/arm64-check), or the arm64 edge image itself in a container on the host's
 * network (scripts/arm64-image-check, which builds it).
 *
 *   node scripts/arm64-sync.ts (--node PATH --sysroot DIR | --image IMAGE) [--users N]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadCentralConfig } from '../src/central/config.ts';
import { prepareDemoCentral } from '../src/central/fleet/demo-data.ts';
import { startCentralServer } from '../src/central/server.ts';
import { generateSigningKeys } from '../src/contract/signing.ts';
import { createPool } from '../src/platform/db.ts';
import { startClusterPair } from '../src/platform/embedded.ts';
import { createLogger } from '../src/platform/logger.ts';
import { ENTRY_POINT, entryNodeFlags } from '../src/platform/node-flags.ts';

const { values } = parseArgs({
  options: {
    node: { type: 'string' },
    sysroot: { type: 'string' },
    image: { type: 'string' },
    users: { type: 'string', default: '2000' },
  },
});
if (!values.image && (!values.node || !values.sysroot)) {
  console.error('usage: node scripts/arm64-sync.ts (--node PATH --sysroot DIR | --image IMAGE) [--users N]');
  process.exit(2);
}

/** The arm64 `dbupdate`: the emulated Node on our sources, or the image's entry point in a container. */
function arm64Command(args: string[], env: Record<string, string>): [string, string[]] {
  if (!values.image)
    return [
      'qemu-aarch64-static',
      ['-L', values.sysroot!, values.node!, ...entryNodeFlags(), ENTRY_POINT, ...args],
    ];
  const settings = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  return [
    'docker',
    // No --platform: the image is checked to run arm64 code first (scripts/arm64-image-check).
    ['run', '--rm', '--network', 'host', ...settings, values.image, ...args],
  ];
}

/** Runs the arm64 `dbupdate` under qemu; resolves with its exit code, stdout and time. */
function arm64(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; out: string; ms: number }> {
  const started = performance.now();
  const [command, argv] = arm64Command(args, env);
  const child = spawn(command, argv, {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: Math.round(performance.now() - started) });
    }),
  );
}

const dir = await mkdtemp(join(tmpdir(), 'dbupdate-arm64-'));
const stops: (() => Promise<void>)[] = [];
let failed: boolean;
try {
  const clusters = await startClusterPair(dir);
  stops.push(clusters.stop);
  const { centralUrl, edgeUrl } = clusters;
  const pool = createPool(centralUrl, { max: 4, applicationName: 'arm64-check' });
  stops.push(() => pool.end());
  const { mac, secret } = await prepareDemoCentral(pool, Number(values.users));
  const keys = generateSigningKeys();
  const central = await startCentralServer(
    loadCentralConfig({
      CENTRAL_DATABASE_URL: centralUrl,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      MANIFEST_SIGNING_KEY: keys.privateKey,
    }),
    createLogger('central-db-update-api', 'warn'),
  );
  stops.push(central.stop);
  const env = {
    EDGE_DATABASE_URL: edgeUrl,
    CENTRAL_URL: central.url,
    DEVICE_MAC: mac,
    DEVICE_TOKEN: secret,
    MANIFEST_PUBLIC_KEYS: keys.publicKey,
    LOG_LEVEL: 'warn',
    HTTP_STALL_TIMEOUT_SECONDS: '120',
  };
  const version = await arm64(['--version'], env);
  console.log(`arm64-check: ${version.out.trim()} under qemu, started in ${version.ms} ms`);
  const sync = await arm64(['edge', 'sync', '--json'], env);
  const result = JSON.parse(sync.out || '{}') as {
    status?: string;
    rowsLoaded?: number;
    durationMs?: number;
  };
  console.log(
    `arm64-check: edge sync exit ${sync.code}: ${result.status} with ${result.rowsLoaded} rows; ${result.durationMs} ms inside the sync, ${sync.ms} ms for the whole process`,
  );
  const verify = await arm64(['edge', 'verify'], env);
  console.log(
    `arm64-check: edge verify exit ${verify.code} in ${verify.ms} ms: ${verify.out.trim().split('\n').at(-1)}`,
  );
  failed = sync.code !== 0 || result.status !== 'success' || verify.code !== 0;
} catch (err) {
  console.error(`arm64-check: ${(err as Error).message}`);
  failed = true;
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}
console.log(failed ? 'arm64-check: FAILED' : 'arm64-check: passed');
process.exit(failed ? 1 : 0);
