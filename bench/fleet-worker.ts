/**
 * One slice of the simulated fleet, in a worker thread so that the simulator is not the
 * bottleneck: each device requests its snapshot on its own schedule (offering the global
 * hash it holds, as an edge does), reads it to the end and acks. Reports per phase: the
 * first-sync storm (each device's first request) and the steady state after it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import zlib from 'node:zlib';
import { Value } from 'typebox/value';
import { Agent, request } from 'undici';
import type { TableDigest } from '../src/contract/canonical.ts';
import { DATA_MODEL } from '../src/contract/data-model.ts';
import { toRuns } from '../src/contract/pieces.ts';
import { EdgeConfigSchema } from '../src/edge/config.ts';
import { edgeRequestHeaders } from '../src/edge/sync/client.ts';
import {
  INLINE_PIECES_HEADER,
  PIECES_MEDIA_TYPE,
  SNAPSHOT_MEDIA_TYPE,
  type Manifest,
} from '../src/contract/wire.ts';
import type { HeldPieces } from '../src/edge/repo/pieces.ts';
import { planLoad } from '../src/edge/sync/plan.ts';

export interface WorkerInput {
  base: string;
  /** With `address`, the device connects from its own loopback address, a new connection per sync. */
  devices: { mac: string; token: string; address?: string | undefined }[];
  intervalMs: number;
  /** Sockets this worker may hold open to Central; more requests wait for one (bounded descriptors). */
  sockets: number;
  /** First sync every device, a few at a time and unrecorded, before the clock starts. */
  warm: boolean;
  /** `pieces`: as edges of this release (manifest, then the changed pieces); `stream`: rows in the answer. */
  protocol: 'pieces' | 'stream';
  /** With pieces: a device that holds nothing asks for its pieces in the answer, as edges of this release do. */
  inline: boolean;
}

export interface PhaseStats {
  latencies: number[];
  statuses: Record<string, number>;
  withRows: number;
  unchanged: number;
  bytes: number;
  /** The same, as they came over the wire (compressed). */
  wireBytes: number;
  /** Calls of /pieces (pieces protocol). */
  pieceFetches: number;
  /** Syncs that failed on every attempt of the edge's retry budget (the device then waits an interval). */
  exhausted: number;
}

/** The edge's HTTP_RETRY_ATTEMPTS default: a sync is one attempt and this many retries. */
export const RETRY_ATTEMPTS = Value.Default(
  EdgeConfigSchema.properties.HTTP_RETRY_ATTEMPTS,
  undefined,
) as number;

const input = workerData as WorkerInput;
const agent = new Agent({ connections: input.sockets, keepAliveTimeout: 30_000 });

/**
 * One call as an edge makes it, answered as bytes. undici's request rather than fetch, and
 * the body decoded in one call: fetch's streams cost the simulator twice the CPU, which it
 * shares with Central on this machine.
 */
async function post(
  path: string,
  accept: string,
  device: Device,
  body: unknown,
  extraHeaders: Record<string, string> = {},
) {
  const res = await request(`${input.base}${path}`, {
    method: 'POST',
    dispatcher: device.agent ?? agent,
    headers: { ...edgeRequestHeaders(accept, DATA_MODEL.version, device.token), ...extraHeaders },
    body: JSON.stringify(body),
  });
  const raw = Buffer.from(await res.body.arrayBuffer());
  const encoding = res.headers['content-encoding'];
  const decoded =
    encoding === 'zstd'
      ? zlib.zstdDecompressSync(raw)
      : encoding === 'gzip'
        ? zlib.gunzipSync(raw)
        : encoding === 'deflate'
          ? zlib.inflateSync(raw)
          : raw;
  const retryAfter = res.headers['retry-after'];
  return {
    status: res.statusCode,
    ok: res.statusCode >= 200 && res.statusCode < 300,
    retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
    // Bytes, not text: only the manifest's line is ever decoded.
    body: decoded,
    wireBytes: raw.length,
  };
}
const newPhase = (): PhaseStats => ({
  latencies: [],
  statuses: {},
  withRows: 0,
  unchanged: 0,
  bytes: 0,
  wireBytes: 0,
  pieceFetches: 0,
  exhausted: 0,
});
const pieces = input.protocol === 'pieces';

/** What a simulated device holds: its tables' digests and, with pieces, their piece lists. */
interface Device {
  mac: string;
  token: string;
  address?: string | undefined;
  /** A sync's own connection, from the device's own address (`--own-addresses`). */
  agent?: Agent | undefined;
  known: string | null;
  retryAfterMs: number;
  tables: TableDigest[] | undefined;
  held: Map<string, HeldPieces>;
}
const phases = { storm: newPhase(), steady: newPhase() };

/** The pieces the manifest says this device lacks, fetched and read to the end, as an edge does. */
async function fetchPieces(device: Device, manifest: Manifest, phase: PhaseStats) {
  const plan = planLoad(manifest, DATA_MODEL, device.tables, device.held);
  const want: Record<string, [number, number][]> = {};
  for (const t of plan) if (t.load.length > 0) want[t.def.name] = toRuns(t.load);
  if (Object.keys(want).length > 0) {
    const res = await post('/api/device-sync/pieces', PIECES_MEDIA_TYPE, device, {
      mac: device.mac,
      manifestId: manifest.manifestId,
      want,
    });
    phase.pieceFetches++;
    if (!res.ok) throw new Error(`pieces answered ${res.status}`);
    phase.bytes += res.body.length;
    phase.wireBytes += res.wireBytes;
  }
  hold(device, plan);
}

/**
 * What devices hold, one object per content: a location's devices hold the same tables and
 * pieces. Held per device, 100,000 devices kept about half a gigabyte alive, and collecting
 * it took a third of the simulator's CPU, on the cores it shares with Central.
 */
const byContent = new Map<string, unknown>();
function oneOf<T>(key: string, value: T): T {
  const held = byContent.get(key) as T | undefined;
  if (held !== undefined) return held;
  byContent.set(key, value);
  return value;
}

/** The piece lists of the tables `plan` loaded, held from now on (kept tables hold theirs already). */
function hold(device: Device, plan: ReturnType<typeof planLoad>) {
  for (const t of plan)
    if (t.mode !== 'keep')
      device.held.set(
        t.def.name,
        oneOf(`pieces|${t.def.name}|${t.expected.sha256}`, {
          tableSha256: t.expected.sha256,
          pieces: t.pieces,
        }),
      );
}

/** One attempt; true when the device holds the manifest's data afterwards. */
async function syncOnce(device: Device, phase: PhaseStats): Promise<boolean> {
  if (!device.address) return attempt(device, phase);
  // As a device in the field: its own address, and a new connection for each sync.
  device.agent = new Agent({ connections: 1, localAddress: device.address });
  try {
    return await attempt(device, phase);
  } finally {
    const closing = device.agent.close();
    device.agent = undefined;
    await closing;
  }
}

async function attempt(device: Device, phase: PhaseStats): Promise<boolean> {
  const started = performance.now();
  let status: string;
  try {
    const holdsNothing = !device.tables;
    const res = await post(
      '/api/device-sync/request',
      SNAPSHOT_MEDIA_TYPE,
      device,
      {
        mac: device.mac,
        knownGlobalSha256: device.known,
        ...(pieces && device.tables
          ? { pieces: true, knownTables: Object.fromEntries(device.tables.map((t) => [t.name, t.sha256])) }
          : pieces
            ? { pieces: true }
            : {}),
      },
      pieces && input.inline && holdsNothing ? { [INLINE_PIECES_HEADER]: '1' } : {},
    );
    const { body } = res;
    // A refusal is counted with its code (OVERLOADED, RATE_LIMITED; a balancer's own page has none).
    const code = res.ok ? undefined : /"code":"([A-Z_]+)"/.exec(body.toString())?.[1];
    status = code ? `${res.status} ${code}` : String(res.status);
    device.retryAfterMs = Number(res.retryAfter ?? 0) * 1000;
    phase.statuses[status] = (phase.statuses[status] ?? 0) + 1;
    if (!res.ok) {
      phase.latencies.push(performance.now() - started);
      return false;
    }
    phase.bytes += body.length;
    phase.wireBytes += res.wireBytes;
    const nl = body.indexOf(0x0a);
    const manifest = (JSON.parse(body.toString('utf8', 0, nl)) as { manifest: Manifest }).manifest;
    // Pieces follow the manifest when Central sent them inline (a piece frame, not the end line).
    const inline = body.toString('latin1', nl + 1, nl + 9) === '{"table"';
    if (pieces && manifest.rowsIncluded) {
      // Sent to a device that holds nothing: its plan loads every table.
      if (inline) hold(device, planLoad(manifest, DATA_MODEL, device.tables, device.held));
      else await fetchPieces(device, manifest, phase);
    }
    // To the last byte of the rows, whichever call brought them.
    phase.latencies.push(performance.now() - started);
    if (manifest.rowsIncluded) phase.withRows++;
    else phase.unchanged++;
    device.known = manifest.globalSha256;
    device.tables = manifest.tables.map((t) => oneOf(`table|${t.name}|${t.sha256}`, t));
    await post('/api/device-sync/ack', 'application/json', device, {
      manifestId: manifest.manifestId,
      mac: device.mac,
      status: 'Success',
      localCounts: Object.fromEntries(manifest.tables.map((t) => [t.name, t.rowCount])),
      localChecksums: Object.fromEntries(manifest.tables.map((t) => [t.name, t.sha256])),
      durationMs: 1,
      error: null,
    });
    return true;
  } catch (err) {
    // undici's errors carry a code (ECONNRESET, ECONNREFUSED, UND_ERR_SOCKET), or a cause that does.
    const { code, cause, message } = err as Error & {
      code?: string;
      cause?: { code?: string; message?: string };
    };
    const key = `error:${code ?? cause?.code ?? cause?.message ?? message}`;
    phase.statuses[key] = (phase.statuses[key] ?? 0) + 1;
    return false;
  }
}

const fleet: Device[] = input.devices.map((d) => ({
  ...d,
  known: null,
  retryAfterMs: 0,
  tables: undefined,
  held: new Map(),
}));
if (input.warm) {
  const unrecorded = newPhase();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < fleet.length) {
        const device = fleet[next++]!;
        while (!(await syncOnce(device, unrecorded)));
      }
    }),
  );
  parentPort!.postMessage({ warmed: true });
}
// The clock starts when the main thread says (after every worker warmed, with --warm).
const { start, deadline } = await new Promise<{ start: number; deadline: number }>((resolve) =>
  parentPort!.once('message', resolve),
);
let withoutData = 0;
/** When the last device of the storm got its data, in ms from the start. */
let stormDoneMs = 0;
await Promise.all(
  fleet.map(async (device) => {
    // Spread over the interval, as SYNC_JITTER does for a real fleet (a run shorter than the
    // interval leaves those due after its end without a try).
    await new Promise((r) =>
      setTimeout(r, Math.min(Math.random() * input.intervalMs, deadline - Date.now())),
    );
    if (Date.now() >= deadline) {
      if (device.known === null) withoutData++;
      return;
    }
    let phase = device.known === null ? phases.storm : phases.steady;
    let attempt = 0;
    while (Date.now() < deadline) {
      const began = Date.now();
      const ok = await syncOnce(device, phase);
      if (ok && phase === phases.storm) stormDoneMs = Math.max(stormDoneMs, Date.now() - start);
      if (device.known !== null) phase = phases.steady;
      // As an edge: a failed attempt is retried when Retry-After says (else after a backoff
      // with jitter) until its retries are spent; then the next try is an interval later.
      attempt = ok ? 0 : attempt + 1;
      if (attempt > RETRY_ATTEMPTS) {
        phase.exhausted++;
        attempt = 0;
      }
      const due =
        attempt === 0
          ? input.intervalMs - (Date.now() - began)
          : device.retryAfterMs || Math.random() * Math.min(30_000, 1000 * 2 ** attempt);
      const wait = Math.min(due, deadline - Date.now());
      await new Promise((r) => setTimeout(r, Math.max(0, wait)));
    }
    if (device.known === null) withoutData++;
  }),
);
parentPort!.postMessage({ ...phases, withoutData, stormDoneMs });
