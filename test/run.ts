/**
 * `npm test`: one PostgreSQL for the whole run (embedded, or TEST_DATABASE_URL when
 * set), migrated template databases for Central and Edge, then node's test runner
 * over every test file; each file clones the templates into databases of its own.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedCluster } from '../src/platform/embedded.ts';
import { prepareTemplates } from './helpers/templates.ts';

const args = process.argv.slice(2);
let adminUrl = process.env.TEST_DATABASE_URL;
let stop: (() => Promise<void>) | undefined;
let dataDir: string | undefined;
if (!adminUrl) {
  dataDir = await mkdtemp(join(tmpdir(), 'dbupdate-test-'));
  try {
    const cluster = await startEmbeddedCluster({ dataDir, name: 'test' });
    adminUrl = cluster.url;
    stop = cluster.stop;
  } catch (err) {
    // One line that says what and how, not a stack: this is a newcomer's first command.
    await rm(dataDir, { recursive: true, force: true });
    const { code = 'INTERNAL', message } = err as { code?: string; message: string };
    console.error(`npm test: ${code}: ${message}`);
    process.exit(1);
  }
}

let code: number;
let child: ReturnType<typeof spawn> | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => child?.kill(signal));
try {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await prepareTemplates(admin, adminUrl);
  } finally {
    await admin.end();
  }
  const files = args.length > 0 ? args : ['test/**/*.test.ts'];
  const runner = spawn(
    process.execPath,
    ['--test', '--test-concurrency=2', '--test-timeout=300000', ...files],
    { stdio: 'inherit', env: { ...process.env, TEST_DATABASE_URL: adminUrl } },
  );
  child = runner;
  code = await new Promise<number>((resolve) =>
    runner.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))),
  );
} finally {
  await stop?.();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}
process.exit(code);
