/**
 * `npm run fleet [-- --devices 1000 --interval 300 --seconds 120 --churn 2 --workers 1
 * --users-per-location 40 --sockets 4000 --env KEY=VALUE --topology single|scale-out --centrals 2
 * --kill-one-at S --protocol pieces|stream --no-inline --own-addresses]`: Central (one process on embedded PostgreSQL, or scaled out on Debian's
 * engines: bench/fleet-topology.ts) and a simulated fleet in worker threads
 * (bench/fleet-worker.ts), all on loopback. Each device syncs on its own schedule, offering the global hash it holds;
 * Central's data changes by one user edit every `--churn` seconds (0: never). Reports per
 * phase (first-sync storm, steady state): requests, answers with rows, unchanged, shed,
 * p50/p99 to the last byte, bytes, and the CPU of Central, PostgreSQL and the simulator.
 */
import { readdir, readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { centralMigrations } from '../src/central/migrations.ts';
import { enrollDevices } from '../src/central/fleet/enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from '../src/central/fleet/seed.ts';
import { generateSigningKeys } from '../src/contract/signing.ts';
import { migrate } from '../src/platform/migrate.ts';
import { scaledOutTopology, singleTopology, type Topology } from './fleet-topology.ts';
import type { PhaseStats, WorkerInput } from './fleet-worker.ts';
import { warmCompileCache } from './image.ts';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    interval: { type: 'string', default: '300' },
    seconds: { type: 'string', default: '120' },
    churn: { type: 'string', default: '2' },
    workers: { type: 'string', default: '1' },
    /**
     * Sockets the whole simulator may hold open (split over its workers). Real devices each have
     * their own; one process cannot (its descriptors are bounded), so requests beyond this wait
     * in the simulator, and that wait counts in their latency.
     */
    sockets: { type: 'string', default: '4000' },
    'users-per-location': { type: 'string', default: '40' },
    /** Measure the steady state alone: every device first syncs, unrecorded, before the clock starts. */
    warm: { type: 'boolean', default: false },
    /** `pieces` (edges of this release) or `stream` (older edges: rows in the answer). */
    protocol: { type: 'string', default: 'pieces' },
    /** With pieces: devices that hold nothing do not ask for their pieces in the answer (edges before this release). */
    'no-inline': { type: 'boolean', default: false },
    /**
     * Each device connects from its own loopback address (127.10.0.1 and on), with a new
     * connection for each sync, as a fleet in the field does; the per-source rate limit is then
     * Central's default (single topology), and --sockets bounds nothing. Without it, devices
     * share 127.0.0.1 and kept-alive sockets (--sockets).
     */
    'own-addresses': { type: 'boolean', default: false },
    env: { type: 'string', multiple: true, default: [] },
    topology: { type: 'string', default: 'single' },
    centrals: { type: 'string', default: '2' },
    /** Seconds into the measured run at which the first Central is SIGKILLed (scale-out). */
    'kill-one-at': { type: 'string' },
  },
});
if (!['single', 'scale-out'].includes(values.topology)) throw new Error('--topology is single or scale-out');
warmCompileCache();
const devices = Math.min(200_000, Number(values.devices));
const intervalMs = Number(values.interval) * 1000;
const durationMs = Math.min(3600, Number(values.seconds)) * 1000;
const churnMs = Number(values.churn) * 1000;
const workers = Math.max(1, Math.min(8, Number(values.workers)));
const usersPerLocation = Math.max(1, Math.min(10_000, Number(values['users-per-location'])));
/** Extra Central settings, `--env KEY=VALUE` (repeatable). */
const extraEnv = Object.fromEntries(values.env.map((kv) => kv.split(/=(.*)/s).slice(0, 2)));

/** The fields of /proc/<pid>/stat after the command (field 3 onwards), or none if it is gone. */
async function procStat(pid: number | string): Promise<string[] | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return text?.split(') ')[1]?.split(' ');
}
/** CPU seconds in stat fields; with `children`, also of the children the process has waited for. */
function cpuOfStat(f: string[], children = false): number {
  const own = Number(f[11]) + Number(f[12]);
  return (own + (children ? Number(f[13]) + Number(f[14]) : 0)) / 100;
}
async function cpuSeconds(pid: number): Promise<number> {
  const f = await procStat(pid);
  if (!f) throw new Error(`process ${pid} is gone`);
  return cpuOfStat(f);
}
/**
 * PostgreSQL's CPU: the postmaster, its live backends, and the ones that exited. Each
 * backend's stat is read once: one that exits meanwhile is counted in the postmaster's
 * children instead.
 */
async function postgresCpu(postmaster: number): Promise<number> {
  const own = await procStat(postmaster);
  if (!own) throw new Error(`PostgreSQL (${postmaster}) is gone`);
  let total = cpuOfStat(own, true);
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = await procStat(entry);
    if (f?.[1] === String(postmaster)) total += cpuOfStat(f);
  }
  return total;
}
async function rssMb(pid: number): Promise<number> {
  return Math.round(
    Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024,
  );
}
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;

function summarize(parts: PhaseStats[], wallSeconds: number) {
  const latencies = parts.flatMap((p) => p.latencies).sort((a, b) => a - b);
  const statuses: Record<string, number> = {};
  for (const p of parts)
    for (const [k, v] of Object.entries(p.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  const requests = latencies.length;
  const shed = Object.entries(statuses)
    .filter(([status]) => /^(503|429)\b/.test(status))
    .reduce((n, [, count]) => n + count, 0);
  return {
    requests,
    perSecond: Math.round((requests / wallSeconds) * 10) / 10,
    withRows: parts.reduce((n, p) => n + p.withRows, 0),
    pieceFetches: parts.reduce((n, p) => n + p.pieceFetches, 0),
    unchanged: parts.reduce((n, p) => n + p.unchanged, 0),
    shed,
    shedPercent: requests ? Math.round((shed / requests) * 1000) / 10 : 0,
    /** Syncs that spent the edge's whole retry budget (RETRY_ATTEMPTS). */
    exhaustedRetries: parts.reduce((n, p) => n + p.exhausted, 0),
    statuses,
    latencyMs: { p50: Math.round(percentile(latencies, 0.5)), p99: Math.round(percentile(latencies, 0.99)) },
    mib: Math.round(parts.reduce((n, p) => n + p.bytes, 0) / 2 ** 20),
    /** As sent, compressed. */
    wireMib: Math.round(parts.reduce((n, p) => n + p.wireBytes, 0) / 2 ** 20),
  };
}

/** What the Centrals say of themselves (summed): where time went and what caches saved. */
function summarizeMetrics(text: string, before: string) {
  const sum = (name: string, labels = '') => total(text, name, labels) - total(before, name, labels);
  const total = (text: string, name: string, labels: string) => {
    let n = 0;
    for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm')))
      if (labels.split(',').every((label) => (m[1] ?? '').includes(label))) n += Number(m[2]);
    return Math.round(n * 1000) / 1000;
  };
  const mean = (name: string, labels = '') =>
    Math.round((sum(`${name}_sum`, labels) / Math.max(1, sum(`${name}_count`, labels))) * 1000);
  /** The share of snapshot requests Central answered within `le` seconds (its histogram's bucket). */
  const within = (le: string) => {
    const route = 'route="/api/device-sync/request"';
    const count = sum('dbupdate_central_http_request_duration_seconds_count', route);
    const fast = sum('dbupdate_central_http_request_duration_seconds_bucket', `${route},le="${le}"`);
    return count ? Math.round((fast / count) * 1000) / 10 : 0;
  };
  return {
    /** As Central timed them (the simulator's latencies also hold its own queues). */
    requestPercentWithin: {
      '0.25s': within('0.25'),
      '1s': within('1'),
      '2.5s': within('2.5'),
      '10s': within('10'),
    },
    snapshotSessions: sum('dbupdate_central_snapshot_sessions_total'),
    digestCache: {
      hit: sum('dbupdate_central_digest_cache_total', 'result="hit"'),
      ownRow: sum('dbupdate_central_digest_cache_total', 'result="own_row"'),
      batched: sum('dbupdate_central_digest_cache_total', 'result="batched"'),
      shared: sum('dbupdate_central_digest_cache_total', 'result="shared"'),
      miss: sum('dbupdate_central_digest_cache_total', 'result="miss"'),
    },
    digestMeanMs: mean('dbupdate_central_snapshot_digest_seconds'),
    sendMeanMs: {
      served: mean('dbupdate_central_snapshot_send_seconds', 'outcome="served"'),
      unchanged: mean('dbupdate_central_snapshot_send_seconds', 'outcome="unchanged"'),
    },
    /** Pieces sent in the snapshot answer (no piece fetch). */
    piecesInline: sum('dbupdate_central_pieces_total', 'result="inline"'),
    mibFromTableCache: Math.round(sum('dbupdate_central_table_cache_bytes_total') / 2 ** 20),
    mibServed: Math.round(sum('dbupdate_central_bytes_served_total') / 2 ** 20),
    snapshotReads: {
      replica: sum('dbupdate_central_snapshot_reads_total', 'database="replica"'),
      primary: sum('dbupdate_central_snapshot_reads_total', 'database="primary"'),
    },
  };
}

/** Each Central's /metrics text, by URL (a killed one's baseline is then left out). */
const metricsTexts = async (urls: string[]) =>
  new Map(
    await Promise.all(
      urls.map(
        async (u) =>
          [
            u,
            await fetch(u).then(
              (r) => r.text(),
              () => '',
            ),
          ] as const,
      ),
    ),
  );

/**
 * Where PostgreSQL's time went during the run, by statement (pg_stat_statements, loaded by
 * the single topology's cluster); nothing when the extension is not there.
 */
async function statementsReset(pool: Topology['pool']) {
  const ok = await pool
    .query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements')
    .then(() => pool.query('SELECT pg_stat_statements_reset()'))
    .then(
      () => true,
      () => false,
    );
  return async () => {
    if (!ok) return undefined;
    const { rows } = await pool.query<{ calls: string; ms: number; plan: number; query: string }>(
      `SELECT calls, round(total_exec_time::numeric, 0)::float8 AS ms,
              round(total_plan_time::numeric, 0)::float8 AS plan,
              regexp_replace(left(query, 90), '[[:space:]]+', ' ', 'g') AS query
         FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC LIMIT 10`,
    );
    return rows.map((r) => `${r.ms} ms + ${r.plan} ms planning / ${r.calls} calls: ${r.query}`);
  };
}

const topology =
  values.topology === 'scale-out'
    ? await scaledOutTopology(Math.max(1, Math.min(8, Number(values.centrals))))
    : await singleTopology();
const keys = generateSigningKeys();
try {
  const { pool } = topology;
  await migrate(pool, await centralMigrations());
  const seedStarted = performance.now();
  // A site's own people: each location links three groups of its own, each user is in one
  // group, so an edited user lies in one location's scope (ten devices), as in a real fleet.
  const perLocation = 10;
  const locations = Math.ceil(devices / perLocation / 10);
  await seedCentral(
    pool,
    {
      ...DEFAULT_SHAPE,
      companies: 10,
      locationsPerCompany: locations,
      devicesPerLocation: perLocation,
      usersPerCompany: usersPerLocation * locations,
      groupsPerCompany: 3 * locations,
      groupsPerLocation: 3,
      groupsPerUser: 1,
    },
    { reset: false },
  );
  const { rows } = await pool.query<{ mac: string }>(
    'SELECT mac::text AS mac FROM devices ORDER BY mac LIMIT $1',
    [devices],
  );
  const fleet: { mac: string; token: string }[] = [];
  for (let i = 0; i < rows.length; i += 5000) {
    const batch = await enrollDevices(
      pool,
      rows.slice(i, i + 5000).map((r) => ({ mac: r.mac })),
      { actor: 'bench', rotate: true, overlapSeconds: 0 },
    );
    fleet.push(...batch.enrolled.map((e) => ({ mac: e.mac, token: e.secret })));
  }
  console.error(
    `fleet: ${fleet.length} devices seeded and enrolled in ${Math.round(performance.now() - seedStarted)} ms`,
  );

  await topology.startCentrals({
    MANIFEST_SIGNING_KEY: keys.privateKey,
    RATE_LIMIT_PER_DEVICE_PER_MINUTE: '1000',
    RATE_LIMIT_GLOBAL_PER_MINUTE: '10000000',
    // Behind haproxy (scale-out) every device reaches Central from the balancer's address.
    ...(values['own-addresses'] && values.topology === 'single'
      ? {}
      : { RATE_LIMIT_PER_SOURCE_PER_MINUTE: '10000000' }),
    LOG_LEVEL: 'error',
    LOG_FORMAT: 'json',
    ...extraEnv,
  });
  const base = topology.base;
  type Result = { storm: PhaseStats; steady: PhaseStats; withoutData: number; stormDoneMs: number };
  const threads = Array.from({ length: workers }, (_, w) => {
    const input: WorkerInput = {
      base,
      devices: fleet
        .map((d, i) => ({ ...d, address: values['own-addresses'] ? loopbackAddress(i) : undefined }))
        .filter((_, i) => i % workers === w),
      intervalMs,
      sockets: Math.max(1, Math.floor(Math.min(16_000, Number(values.sockets)) / workers)),
      warm: values.warm,
      protocol: values.protocol === 'stream' ? 'stream' : 'pieces',
      inline: !values['no-inline'],
    };
    const worker = new Worker(new URL('./fleet-worker.ts', import.meta.url), { workerData: input });
    let onWarm = () => {};
    const warmed = new Promise<void>((r) => (onWarm = r));
    const result = new Promise<Result>((resolve, reject) => {
      worker.on('message', (m: Result | { warmed: true }) => ('warmed' in m ? onWarm() : resolve(m)));
      worker.once('error', reject);
    });
    return { worker, warmed, result };
  });
  if (values.warm) {
    await Promise.all(threads.map((t) => t.warmed));
    console.error(`fleet: every device holds its data; measuring from now`);
  }
  const metrics0 = await metricsTexts(topology.metrics);
  const cpuOf = async () => {
    const out: Record<string, number> = {};
    for (const [name, pid] of Object.entries({ ...topology.central, ...topology.other }))
      out[name] = await cpuSeconds(pid).catch(() => NaN);
    for (const [name, pid] of Object.entries(topology.postgres)) out[name] = await postgresCpu(pid);
    return out;
  };
  const statements = await statementsReset(topology.pool);
  const [cpu0, sim0] = [await cpuOf(), process.cpuUsage()];
  const t0 = Date.now();
  const killAt = values['kill-one-at'] === undefined ? undefined : Number(values['kill-one-at']) * 1000;
  // The killed Central's CPU up to its death is not read again: its share is left out.
  const killer =
    killAt === undefined
      ? undefined
      : setTimeout(() => {
          console.error(`fleet: SIGKILL to the first Central at ${killAt / 1000} s`);
          topology.killOne();
        }, killAt);
  for (const t of threads) t.worker.postMessage({ start: t0, deadline: t0 + durationMs });
  let edits = 0;
  const mutator =
    churnMs > 0
      ? setInterval(() => {
          edits++;
          void pool.query(
            `UPDATE users SET updated_at = now() WHERE ctid = (SELECT ctid FROM users TABLESAMPLE SYSTEM (0.1) LIMIT 1)`,
          );
        }, churnMs)
      : undefined;
  const results = await Promise.all(threads.map((t) => t.result));
  clearInterval(mutator);
  clearTimeout(killer);
  const wall = (Date.now() - t0) / 1000;
  const sim = process.cpuUsage(sim0);
  const cpu1 = await cpuOf();
  const cpu: Record<string, number> = {};
  for (const [name, seconds] of Object.entries(cpu1))
    if (Number.isFinite(seconds))
      cpu[`${name}PercentOfOneCore`] = Math.round(((seconds - cpu0[name]!) / wall) * 100);
  cpu.simulatorPercentOfOneCore = Math.round(((sim.user + sim.system) / 1e6 / wall) * 100);
  const rss: Record<string, number> = {};
  for (const [name, pid] of Object.entries(topology.central)) {
    const mb = await rssMb(pid).catch(() => undefined);
    if (mb !== undefined) rss[name] = mb;
  }
  const metrics1 = await metricsTexts(topology.metrics);
  const centralMetrics = summarizeMetrics(
    [...metrics1.values()].join('\n'),
    [...metrics1.keys()].map((u) => metrics0.get(u)).join('\n'),
  );
  console.log(
    JSON.stringify(
      {
        topology: values.topology,
        protocol: values.protocol,
        inline: values.protocol !== 'stream' && !values['no-inline'],
        ownAddresses: values['own-addresses'],
        devices: fleet.length,
        intervalSeconds: intervalMs / 1000,
        seconds: Math.round(wall),
        userEdits: edits,
        storm: {
          ...summarize(
            results.map((r) => r.storm),
            wall,
          ),
          // Devices that never got their data, and when the last one that did got it.
          devicesWithoutData: results.reduce((n, r) => n + r.withoutData, 0),
          lastDataAtSeconds: Math.round(Math.max(...results.map((r) => r.stormDoneMs)) / 1000),
        },
        steady: summarize(
          results.map((r) => r.steady),
          wall,
        ),
        cpu,
        central: centralMetrics,
        centralRssMb: rss,
        postgresTopStatements: await statements(),
        ...(killAt === undefined ? {} : { killedOneCentralAtSeconds: killAt / 1000 }),
      },
      null,
      2,
    ),
  );
} finally {
  await topology.stop();
}

/** The i-th device's own loopback address: 127.10.0.1 and on, 64 a /24, never .0. */
function loopbackAddress(i: number): string {
  return `127.${10 + (i >> 14)}.${(i >> 6) & 255}.${1 + (i & 63)}`;
}
