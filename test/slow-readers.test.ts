/**
 * Clients that stop reading their snapshot must not hold Central's snapshot slots for
 * long: they are cut once they move less than the floor over a window, and a
 * well-behaved device is served again within a bounded time.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { startCentral, seedOneScope, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { requestSnapshot } from './helpers/snapshot.ts';
import { waitFor } from './helpers/wait.ts';

const READERS = 100;

describe('slow readers', () => {
  let central: TestDatabase;
  let api: RunningCentral;
  let device: { mac: string; token: string };

  before(async () => {
    central = await createTestDatabase('central');
    // Large enough that a response cannot hide in socket buffers.
    device = await seedOneScope(central, 40_000);
    api = await startCentral(central, {
      MAX_CONCURRENT_SNAPSHOTS: '4',
      MAX_CONCURRENT_ANSWERS: '4',
      // Shed at once, as before the admission queue, so the held slots show (the queue has its own test).
      SNAPSHOT_QUEUE_WAIT_MS: '0',
      SNAPSHOT_SLOW_WINDOW_SECONDS: '1',
      SNAPSHOT_MIN_BYTES_PER_SECOND: '262144',
      RATE_LIMIT_PER_DEVICE_PER_MINUTE: '10000',
      // The readers are all one device: its own bound would refuse them before the slots.
      MAX_ANSWERS_PER_DEVICE: '1000',
    });
  });
  after(async () => {
    await api[Symbol.asyncDispose]();
    await central[Symbol.asyncDispose]();
  });

  /**
   * Clients that read 5 bytes a second through a 4 KB receive buffer (set before connecting,
   * which Node cannot do, hence Python): their answers cannot hide in socket buffers. The
   * process runs for at most `seconds`.
   */
  function slowReaders(count: number, seconds: number): { done: Promise<{ open: number }> } {
    const { hostname, port } = new URL(api.url);
    const body = JSON.stringify({ mac: device.mac });
    const request =
      `POST /api/device-sync/request HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
      `Authorization: Bearer ${device.token}\r\nAccept-Encoding: identity\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const script = `
import json, socket, sys, time
host, port, n, seconds, req = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5].encode()
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, port))
    s.sendall(req)
    s.setblocking(False)
    socks.append(s)
print("connected", flush=True)
open_socks, end = set(socks), time.time() + seconds
while open_socks and time.time() < end:
    for s in list(open_socks):
        try:
            if s.recv(5) == b"":
                open_socks.discard(s)
        except BlockingIOError:
            pass
        except OSError:
            open_socks.discard(s)
    time.sleep(1)
print(json.dumps({"open": len(open_socks)}), flush=True)
`;
    const child = spawn('python3', ['-c', script, hostname, port, String(count), String(seconds), request], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const done = new Promise<{ open: number }>((resolve, reject) =>
      child.on('exit', (code) =>
        code === 0
          ? resolve(JSON.parse(out.trim().split('\n').at(-1)!) as { open: number })
          : reject(new Error(out)),
      ),
    );
    return { done };
  }

  it(`serves a well-behaved device again soon after ${READERS} readers stopped reading`, async () => {
    const readers = slowReaders(READERS, 20);
    // Every reader answered: four hold the slots (their rows still open), the others were shed.
    await waitFor(
      async () =>
        (
          await central.pool.query<{ open: number; all: number }>(
            "SELECT count(*) FILTER (WHERE status = 'started')::int AS open, count(*)::int AS all FROM sync_requests",
          )
        ).rows[0]!,
      (n) => n.all >= READERS && n.open === 4,
      15_000,
    );
    const started = Date.now();
    let shed = 0;
    let served = false;
    for (let attempt = 0; attempt < 150 && !served; attempt++) {
      const res = await requestSnapshot(api.url, { mac: device.mac }, device.token);
      await res.arrayBuffer();
      if (res.status === 200) served = true;
      else {
        assert.equal(res.status, 503);
        shed++;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const waitedMs = Date.now() - started;
    assert.ok(served, `still shed after ${shed} tries`);
    assert.ok(shed > 0, 'the slow readers did hold the slots at first');
    // The held requests first hash their scope (Central shares this process and its 2 cores),
    // then stream until their socket buffers fill; a window or two later they are cut.
    // Without the cut they would hold the slots for minutes.
    assert.ok(waitedMs < 15_000, `served only after ${waitedMs} ms`);
    await readers.done;
    // What Central had buffered still trickles to a cut reader, so the proof is Central's own record.
    const { rows } = await central.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM sync_requests WHERE status IN ('aborted', 'error') AND reason LIKE '%; cut'",
    );
    assert.ok(rows[0]!.n >= 4, `audited cuts: ${rows[0]!.n}`);
  });
});
