/**
 * `npm run bench [-- --users 100000,1000000]`: for each size, seeds a central scope of N
 * users, then measures with real processes on loopback:
 *   - a device request read to the end (no edge work), identity and gzip;
 *   - a full `dbupdate edge sync` (pull, COPY load, verify, commit, ack);
 * with wall time, bytes and the peak RSS (VmHWM) of the Central and Edge processes, each
 * side's steps (Central's hashing pass, manifest and send; Edge's pull, load, verify,
 * commit and ack) and rows per second; then the raw COPY pipe and pg_dump baselines.
 * `--rounds N` repeats the full sync (into a fresh database) and the bare pipe N-1 more
 * times, alternating, and reports each series and their medians. `--split-cores` gives
 * Central's side and the edge's side a core each, as in the field they have their own.
 * Central and Edge databases live in two embedded clusters on this machine.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { centralMigrations } from '../src/central/migrations.ts';
import { createPool, type Pool } from '../src/platform/db.ts';
import { freePort, startEmbeddedCluster } from '../src/platform/embedded.ts';
import { migrate } from '../src/platform/migrate.ts';
import { edgeMigrations } from '../src/edge/migrations.ts';
import { generateSigningKeys } from '../src/contract/signing.ts';
import { TABLE_NAMES } from '../src/contract/tables.ts';
import { imageNodeArgs, imageNodeEnv, warmCompileCache } from './image.ts';
import { seedOneLocation } from './lib/central.ts';
import { dumpBaseline, rawPipe, scopeSource, startDumpCluster } from './baselines.ts';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '100000,1000000' },
    // This VM's neighbours move a single figure by up to 1.4 times (docs/scaling.md): further
    // rounds of a full sync into a fresh database, each followed by the bare pipe, give medians.
    rounds: { type: 'string', default: '1' },
    // A device does not share its cores with Central: Central's side (its PostgreSQL, Central and
    // this process, which also carries the bare pipe) on CPU 0, the edge's side on CPU 1.
    'split-cores': { type: 'boolean', default: false },
  },
});
const splitCores = values['split-cores'];
warmCompileCache();
const sizes = values.users.split(',').map(Number);
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1)
  throw new Error(`--rounds: a whole number from 1, not ${values.rounds}`);

/** A process and its children on one CPU (children forked later inherit it). */
function pin(pid: number, cpu: number): void {
  // -a: every thread the process has already started (V8's and libuv's), not only its main one.
  execFileSync('taskset', ['-a', '-pc', String(cpu), String(pid)], { stdio: 'ignore' });
  for (const child of childrenOf(pid)) pin(child, cpu);
}

function childrenOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when there is none
  }
}

/** An embedded cluster's postmaster, from its data directory. */
async function postmasterOf(dataDir: string, name: string): Promise<number> {
  return Number((await readFile(join(dataDir, name, 'postmaster.pid'), 'utf8')).split('\n')[0]);
}

async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

/**
 * Runs the CLI; its JSON log lines give each step's duration (the step model's finish
 * events). Services log to stdout, `edge sync` to stderr (its stdout is the result), so
 * both are read; anything on stderr that is not a log line is passed on.
 */
function run(
  args: string[],
  env: Record<string, string>,
): { child: ChildProcess; done: Promise<number>; steps: Map<string, number> } {
  const child = spawn(process.execPath, [...imageNodeArgs(), ...args], {
    env: {
      ...process.env,
      ...imageNodeEnv(args[0] === 'edge' ? 'edge' : 'central'),
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (splitCores) pin(child.pid!, args[0] === 'edge' ? 1 : 0);
  const steps = new Map<string, number>();
  const read = (stream: NodeJS.ReadableStream, passOn: boolean) => {
    let pending = '';
    stream.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk.toString()).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const event = /"event":"([a-z.]+)\.finish".*?"durationMs":(\d+)/.exec(line);
        if (event) steps.set(event[1]!, (steps.get(event[1]!) ?? 0) + Number(event[2]));
        const loaded = /"rows":(\d+)(?:,"mode":"[a-z]+")?,"event":"sync\.load\.table\.finish"/.exec(line);
        if (loaded) steps.set('rows loaded', (steps.get('rows loaded') ?? 0) + Number(loaded[1]));
        if (passOn && !line.startsWith('{')) process.stderr.write(`${line}\n`);
      }
    });
  };
  read(child.stdout!, false);
  read(child.stderr!, true);
  return { child, done: new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1))), steps };
}

/** Step times added to `now` since `before` was copied from it. */
function since(now: Map<string, number>, before: Map<string, number>): Map<string, number> {
  return new Map([...now].map(([k, v]) => [k, v - (before.get(k) ?? 0)]));
}

/** Runs a command to its end, sampling its peak RSS just before it exits. */
async function measured(args: string[], env: Record<string, string>) {
  const t = performance.now();
  const { child, done, steps } = run(args, env);
  let peak = 0;
  const sampler = setInterval(() => void peakRssMb(child.pid!).then((mb) => (peak = Math.max(peak, mb))), 50);
  const code = await done;
  clearInterval(sampler);
  return { code, ms: Math.round(performance.now() - t), peakMb: peak, steps };
}

/** Reads a snapshot response to its end over raw HTTP, counting the bytes on the wire. */
function drain(url: string, body: unknown, token: string, encoding: string) {
  const t = performance.now();
  return new Promise<{ ms: number; bytes: number; status: number }>((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${token}`,
          'accept-encoding': encoding,
        },
      },
      (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () =>
          resolve({ ms: Math.round(performance.now() - t), bytes, status: res.statusCode ?? 0 }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/**
 * The full sync as the edge's tables' owner without superuser (the role the README recommends),
 * then a one-user edit at Central synced by both that edge and the superuser one (issue 37).
 */
async function leastPrivilege(
  central: Pool,
  cluster: { createDatabase(name: string, options?: { replace?: boolean }): Promise<string> },
  superuserEnv: Record<string, string>,
  name: string,
) {
  const url = await cluster.createDatabase(name, { replace: true });
  const admin = createPool(url, { max: 1, applicationName: 'bench' });
  try {
    await admin.query(`DO $$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_owner') THEN
        CREATE ROLE bench_owner LOGIN NOSUPERUSER PASSWORD 'bench-owner'; END IF; END $$`);
    await admin.query(`ALTER DATABASE "${name}" OWNER TO bench_owner`);
    await admin.query('GRANT CREATE, USAGE ON SCHEMA public TO bench_owner');
  } finally {
    await admin.end();
  }
  const ownerUrl = new URL(url);
  [ownerUrl.username, ownerUrl.password] = ['bench_owner', 'bench-owner'];
  const env = { ...superuserEnv, EDGE_DATABASE_URL: ownerUrl.toString() };
  if ((await measured(['edge', 'migrate'], env)).code !== 0) throw new Error('edge migrate as owner failed');
  const full = await measured(['edge', 'sync'], env);
  await central.query(
    `UPDATE users SET display_name = display_name || '.', updated_at = now()
      WHERE id = (SELECT id FROM users ORDER BY id LIMIT 1)`,
  );
  const delta = await measured(['edge', 'sync'], env);
  const superuserDelta = await measured(['edge', 'sync'], superuserEnv);
  return { full, delta, superuserDelta };
}

/** The bare pipe into a database that held the scope, emptied first. */
async function barePipeInto(url: string, source: ReturnType<typeof scopeSource>): Promise<number> {
  const clean = createPool(url, { applicationName: 'bench', max: 1 });
  await clean.query(`TRUNCATE ${TABLE_NAMES.map((name) => `"${name}"`).join(', ')}`);
  await clean.end();
  return rawPipe(source, url, false);
}

/** Rounds after the first: a full sync into a fresh edge database, then the bare pipe at once. */
async function moreRounds(
  cluster: { createDatabase(name: string, options?: { replace?: boolean }): Promise<string> },
  edgeEnv: Record<string, string>,
  pipeUrl: string,
  source: ReturnType<typeof scopeSource>,
) {
  const done: { syncMs: number; stepMs: number; peakMb: number; bareMs: number }[] = [];
  for (let r = 2; r <= rounds; r++) {
    const env = {
      ...edgeEnv,
      // One name for every round: each replaces the last, so only one copy stays on disk.
      EDGE_DATABASE_URL: await cluster.createDatabase('bench_edge_round', { replace: true }),
    };
    if ((await measured(['edge', 'migrate'], env)).code !== 0) throw new Error('edge migrate failed');
    const sync = await measured(['edge', 'sync'], env);
    if (sync.code !== 0) throw new Error(`round ${r}: edge sync failed`);
    const bareMs = await barePipeInto(pipeUrl, source);
    done.push({ syncMs: sync.ms, stepMs: sync.steps.get('sync') ?? 0, peakMb: sync.peakMb, bareMs });
  }
  return done;
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Each round's figures, the ratio of their medians and the median of the rounds' ratios. */
function roundsLine(all: { syncMs: number; stepMs: number; peakMb: number; bareMs: number }[]): string {
  const sync = all.map((r) => r.syncMs);
  const step = all.map((r) => r.stepMs);
  const bare = all.map((r) => r.bareMs);
  return (
    `  ${all.length} rounds (a fresh edge database each, the bare pipe right after): full sync ${sync.join(', ')} ms;` +
    ` sync step ${step.join(', ')} ms; bare pipe ${bare.join(', ')} ms; per round ${all.map((r) => (r.syncMs / r.bareMs).toFixed(2)).join(', ')};` +
    ` medians ${median(sync)} / ${median(bare)} = ${(median(sync) / median(bare)).toFixed(2)}` +
    ` (step ${(median(step) / median(bare)).toFixed(2)});` +
    ` median of the rounds' ratios ${median(all.map((r) => r.syncMs / r.bareMs)).toFixed(2)}` +
    ` (step ${median(all.map((r) => r.stepMs / r.bareMs)).toFixed(2)}); edge peak ${Math.max(...all.map((r) => r.peakMb))} MB`
  );
}

const keys = generateSigningKeys();
const dir = await mkdtemp(join(tmpdir(), 'dbupdate-bench-'));
const [centralPg, edgePg] = await Promise.all([
  startEmbeddedCluster({ dataDir: dir, name: 'central' }),
  startEmbeddedCluster({ dataDir: dir, name: 'edge' }),
]);
if (splitCores) {
  pin(process.pid, 0);
  pin(await postmasterOf(dir, 'central'), 0);
  pin(await postmasterOf(dir, 'edge'), 1);
}
const rows: string[][] = [];
const dumpCluster = await startDumpCluster();
try {
  const centralUrl = await centralPg.createDatabase('central');
  const pool = createPool(centralUrl, { max: 4, applicationName: 'bench' });
  await migrate(pool, await centralMigrations());
  console.log(
    `machine: ${cpus().length} × ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}` +
      (splitCores
        ? '; Central, its PostgreSQL and the pipe on CPU 0, the edge and its PostgreSQL on CPU 1'
        : ''),
  );

  for (const users of sizes) {
    const seeded = await seedOneLocation(pool, users);
    const mac = seeded.devices[0]!.mac;
    const { secret } = await enrollDevice(pool, mac);
    const port = await freePort();
    const central = run(['central', 'serve'], {
      CENTRAL_DATABASE_URL: centralUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      MANIFEST_SIGNING_KEY: keys.privateKey,
    });
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 200; i++) {
      if ((await fetch(`${base}/readyz`).catch(() => undefined))?.ok) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const cold = new Map(central.steps);
    const plain = await drain(`${base}/api/device-sync/request`, { mac }, secret, 'identity');
    // Central logs the send step's end just after the last byte leaves it.
    for (let i = 0; i < 40 && central.steps.get('snapshot.send') === cold.get('snapshot.send'); i++)
      await new Promise((r) => setTimeout(r, 50));
    const coldSteps = since(central.steps, cold);
    const gzip = await drain(`${base}/api/device-sync/request`, { mac }, secret, 'gzip');
    const zstd = await drain(`${base}/api/device-sync/request`, { mac }, secret, 'zstd');
    const centralPeakAfterRequests = await peakRssMb(central.child.pid!);

    const edgeEnv = {
      EDGE_DATABASE_URL: await edgePg.createDatabase(`bench_edge_${users}`, { replace: true }),
      CENTRAL_URL: base,
      DEVICE_MAC: mac,
      DEVICE_TOKEN: secret,
      HTTP_STALL_TIMEOUT_SECONDS: '600',
      MANIFEST_PUBLIC_KEYS: keys.publicKey,
    };
    const migrateEdge = await measured(['edge', 'migrate'], edgeEnv);
    if (migrateEdge.code !== 0) throw new Error('edge migrate failed');
    const beforeSync = new Map(central.steps);
    const sync = await measured(['edge', 'sync'], edgeEnv);
    const syncCentralSteps = since(central.steps, beforeSync);
    const resync = await measured(['edge', 'sync'], edgeEnv);
    const centralPeak = await peakRssMb(central.child.pid!);
    const owner = await leastPrivilege(pool, edgePg, edgeEnv, `bench_owner_${users}`);
    const pipeUrl = await edgePg.createDatabase(`bench_pipe_${users}`, { replace: true });
    const pipePool = createPool(pipeUrl, { applicationName: 'bench', max: 1 });
    await migrate(pipePool, await edgeMigrations());
    await pipePool.end();
    const pipe = await rawPipe(scopeSource(centralUrl, mac), pipeUrl, true);
    const barePipe = await barePipeInto(pipeUrl, scopeSource(centralUrl, mac));
    const later = await moreRounds(edgePg, edgeEnv, pipeUrl, scopeSource(centralUrl, mac));
    const centralPeakAfterRounds = await peakRssMb(central.child.pid!);
    const dump = dumpCluster
      ? await dumpBaseline(dumpCluster, scopeSource(centralUrl, mac), String(users))
      : undefined;
    central.child.kill('SIGTERM');
    await central.done;
    const scope = seeded.counts.users;
    rows.push([
      String(users),
      String(scope),
      `${plain.ms} ms`,
      `${(plain.bytes / 2 ** 20).toFixed(1)} MiB`,
      `${gzip.ms} ms, ${(gzip.bytes / 2 ** 20).toFixed(1)} MiB`,
      `${zstd.ms} ms, ${(zstd.bytes / 2 ** 20).toFixed(1)} MiB`,
      `${centralPeakAfterRequests} MB`,
      `${sync.ms} ms${sync.code === 0 ? '' : ' (FAILED)'}`,
      `${sync.peakMb} MB`,
      `${resync.ms} ms`,
      `${centralPeak} MB`,
    ]);
    console.log(rows.at(-1)!.join(' | '));
    console.log(
      `  raw COPY pipe of the same scope: ${pipe} ms with foreign-key triggers, ${barePipe} ms without;` +
        ` full sync / raw pipe = ${(sync.ms / pipe).toFixed(2)} and ${(sync.ms / barePipe).toFixed(2)}`,
    );
    console.log(
      dump
        ? `  pg_dump | pg_restore (PostgreSQL ${dump.version}, custom format, one transaction): ${dump.dumpMs} ms,` +
            ` ${(dump.dumpBytes / 2 ** 20).toFixed(1)} MiB dump; raw pipe on that server ${dump.pipeMs} ms;` +
            ` pg_dump / raw pipe = ${(dump.dumpMs / dump.pipeMs).toFixed(2)}`
        : '  pg_dump baseline skipped: no pg_dump with server binaries of its own version (Debian: postgresql-15)',
    );
    if (later.length > 0) {
      const first = {
        syncMs: sync.ms,
        stepMs: sync.steps.get('sync') ?? 0,
        peakMb: sync.peakMb,
        bareMs: barePipe,
      };
      console.log(`${roundsLine([first, ...later])}; central peak ${centralPeakAfterRounds} MB`);
    }
    const split = [
      'sync.pull',
      'sync.validate',
      'sync.plan',
      'sync.fetch',
      'sync.load',
      'sync.verify',
      'sync.commit',
      'sync.ack',
      'sync',
    ];
    console.log(`  edge steps (ms): ${split.map((k) => `${k}=${sync.steps.get(k) ?? '-'}`).join(' ')}`);
    console.log(
      `  least privilege (the tables' owner, no superuser): full sync ${owner.full.ms} ms against ${sync.ms} ms;` +
        ` one-user edit: owner ${owner.delta.ms} ms, ${owner.delta.steps.get('rows loaded') ?? '-'} rows loaded;` +
        ` superuser ${owner.superuserDelta.ms} ms, ${owner.superuserDelta.steps.get('rows loaded') ?? '-'} rows loaded`,
    );
    const rowsLoaded = sync.steps.get('rows loaded') ?? 0;
    const perSecond = (ms: number | undefined) => (ms ? Math.round((rowsLoaded * 1000) / ms) : '-');
    console.log(
      `  rows/s over ${rowsLoaded} rows: full sync ${perSecond(sync.ms)}, edge load ${perSecond(sync.steps.get('sync.load'))},` +
        ` edge verify ${perSecond(sync.steps.get('sync.verify'))}, central hashing pass ${perSecond(coldSteps.get('scope.compute'))}`,
    );
    const centralSplit = ['scope.compute', 'manifest.create', 'snapshot.send', 'pieces.serve', 'ack.store'];
    const show = (m: Map<string, number>) => centralSplit.map((k) => `${k}=${m.get(k) ?? '-'}`).join(' ');
    console.log(`  central steps (ms), first request (hashing pass in scope.compute): ${show(coldSteps)}`);
    console.log(`  central steps (ms), during the full sync (digests cached): ${show(syncCentralSteps)}`);
    console.log(
      `  per table load (ms): ${[...sync.steps]
        .filter(([k]) => k === 'sync.load.table')
        .map(([, v]) => v)
        .join(' ')}`,
    );
  }
  await pool.end();
} finally {
  await dumpCluster?.stop();
  await Promise.all([centralPg.stop(), edgePg.stop()]);
  await rm(dir, { recursive: true, force: true });
}

const header = [
  'users (seeded)',
  'users in scope',
  'request, identity',
  'body',
  'request, gzip',
  'request, zstd',
  'central peak RSS after requests',
  'full edge sync',
  'edge peak RSS',
  'unchanged sync',
  'central peak RSS',
];
console.log(`\n| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|`);
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
