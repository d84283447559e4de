/**
 * A field link on loopback, for tests and benches: a TCP proxy in front of a server that
 * limits the bandwidth towards the client (a token bucket, as an LTE downlink), delays
 * every chunk each way by a latency, and cuts every open connection at set times, as a
 * cell handover or a dropped Wi-Fi does. It counts the bytes it delivered to clients.
 */
import { createServer, connect, type Socket } from 'node:net';
import { freePort } from '../../src/platform/embedded.ts';

export interface LinkOptions {
  /** Downlink (server to client) bits a second; the uplink is not limited. */
  bitsPerSecond: number;
  /** One-way delay added to every chunk, each way. */
  latencyMs: number;
  /** Every this many ms, every open connection is destroyed (0: never). */
  cutEveryMs?: number;
  /** Cut every open connection once the bytes delivered reach each of these totals, in order. */
  cutAtBytes?: number[];
  /** After each cut, new connections are dropped at once for this long: a server restarting. */
  downForMs?: number;
}

export interface Link {
  url: string;
  /** Bytes delivered to clients so far. */
  readonly bytesDown: number;
  /** Connections cut so far. */
  readonly cuts: number;
  /** Connections dropped at once while the link was down after a cut. */
  readonly refused: number;
  close(): Promise<void>;
}

const SLICE = 16 * 1024;
const HIGH_WATER = 256 * 1024;

/**
 * Delivers `from`'s data to `to` no faster than `bps` (0: unlimited), `latencyMs` late, in
 * order: one queue drained by one timer, since timers set from different events may fire
 * out of the order they were set in (libuv's clock is coarser than performance.now()).
 */
function shape(from: Socket, to: Socket, bps: number, latencyMs: number, count: (n: number) => void): void {
  let nextFree = 0;
  let queued = 0;
  let ended = false;
  const queue: { due: number; slice: Buffer }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const drain = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.due <= now) {
      const { slice } = queue.shift()!;
      queued -= slice.length;
      if (!to.destroyed) {
        to.write(slice);
        count(slice.length);
      }
    }
    if (queued < HIGH_WATER / 2) from.resume();
    if (queue.length > 0) timer = setTimeout(drain, Math.max(1, queue[0]!.due - now));
    else if (ended) to.end();
  };
  from.on('data', (chunk: Buffer) => {
    const now = performance.now();
    for (let at = 0; at < chunk.length; at += SLICE) {
      const slice = chunk.subarray(at, at + SLICE);
      const start = Math.max(now, nextFree);
      nextFree = start + (bps > 0 ? (slice.length * 8 * 1000) / bps : 0);
      queued += slice.length;
      queue.push({ due: nextFree + latencyMs, slice });
    }
    if (queued > HIGH_WATER) from.pause();
    timer ??= setTimeout(drain, Math.max(1, queue[0]!.due - now));
  });
  from.on('end', () => {
    ended = true;
    timer ??= setTimeout(drain, latencyMs);
  });
  from.on('close', () => clearTimeout(timer));
}

export async function startLink(target: { host: string; port: number }, options: LinkOptions): Promise<Link> {
  const port = await freePort();
  const open = new Set<Socket>();
  let bytesDown = 0;
  let cuts = 0;
  let refused = 0;
  let downUntil = 0;
  const cutAt = [...(options.cutAtBytes ?? [])];
  const cutAll = () => {
    downUntil = performance.now() + (options.downForMs ?? 0);
    for (const socket of open) {
      cuts++;
      socket.destroy();
    }
  };
  const server = createServer((client) => {
    if (performance.now() < downUntil) {
      refused++;
      client.destroy();
      return;
    }
    const upstream = connect(target.port, target.host);
    open.add(client);
    const close = () => {
      open.delete(client);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    shape(client, upstream, 0, options.latencyMs, () => {});
    shape(upstream, client, options.bitsPerSecond, options.latencyMs, (n) => {
      bytesDown += n;
      if (cutAt.length > 0 && bytesDown >= cutAt[0]!) {
        cutAt.shift();
        cutAll();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const cutter =
    options.cutEveryMs && options.cutEveryMs > 0 ? setInterval(cutAll, options.cutEveryMs) : undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    get bytesDown() {
      return bytesDown;
    },
    get cuts() {
      return cuts;
    },
    get refused() {
      return refused;
    },
    async close() {
      clearInterval(cutter);
      for (const socket of open) socket.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
