/**
 * Log shipping to Seq: CLEF over HTTP to a loopback endpoint that checks what it gets;
 * a dead or hanging Seq never blocks logging, the buffer stays bounded, drops are
 * counted, and what was kept arrives once Seq is back.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { CentralMetrics } from '../src/central/metrics.ts';
import { createLogger, loggerOptions } from '../src/platform/logger.ts';
import { SeqSink, closeSeqSinks, toClef } from '../src/platform/seq.ts';
import { waitFor } from './helpers/wait.ts';

interface FakeSeq {
  url: string;
  events: Record<string, unknown>[];
  requests: IncomingMessage[];
  /** 'ok' answers 201, 'hang' never answers, 'down' closes the socket. */
  mode: 'ok' | 'hang' | 'down';
  server: Server;
}

async function fakeSeq(): Promise<FakeSeq> {
  const seq: FakeSeq = { url: '', events: [], requests: [], mode: 'ok', server: createServer() };
  seq.server.on('request', (req, res) => {
    if (seq.mode === 'down') return req.socket.destroy();
    if (seq.mode === 'hang') return;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seq.requests.push(req);
      const lines = Buffer.concat(chunks).toString().split('\n').filter(Boolean);
      for (const line of lines) seq.events.push(JSON.parse(line) as Record<string, unknown>);
      res.writeHead(201, { 'content-type': 'application/json' }).end('{"MinimumLevelAccepted":null}');
    });
  });
  await new Promise<void>((resolve) => seq.server.listen(0, '127.0.0.1', resolve));
  seq.url = `http://127.0.0.1:${(seq.server.address() as AddressInfo).port}`;
  return seq;
}

describe('Seq log shipping', () => {
  const servers: Server[] = [];
  after(async () => {
    await closeSeqSinks(100);
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });

  it('maps a pino line to CLEF: time, level, message, exception, trace ids, properties', () => {
    const line = JSON.stringify({
      level: 50,
      time: '2026-11-27T10:00:00.000Z',
      msg: 'sync.load failed {not a template}',
      event: 'sync.load.finish',
      manifestId: '01ABC',
      err: { type: 'AppError', message: 'boom', stack: 'AppError: boom\n    at x' },
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      '@odd': 1,
    });
    assert.deepEqual(JSON.parse(toClef(line)!), {
      '@t': '2026-11-27T10:00:00.000Z',
      '@m': 'sync.load failed {not a template}',
      '@l': 'Error',
      '@x': 'AppError: boom\n    at x',
      '@tr': '0af7651916cd43dd8448eb211c80319c',
      '@sp': 'b7ad6b7169203331',
      event: 'sync.load.finish',
      manifestId: '01ABC',
      '@@odd': 1,
    });
    assert.equal(toClef('not json'), undefined);
  });

  it('ships the service log as CLEF batches with the API key, credentials redacted', async () => {
    const seq = await fakeSeq();
    servers.push(seq.server);
    const log = createLogger('central-db-update-api', 'info', { SEQ_URL: seq.url, SEQ_API_KEY: 'k-123' });
    log.info({ event: 'test.one', token: 'device-secret' }, 'first');
    log.warn({ event: 'test.two', authorization: 'Bearer abc' }, 'second');
    log.debug({ event: 'test.hidden' }, 'below the level');
    await waitFor(async () => seq.events.length >= 2, Boolean, 5000);
    const req = seq.requests[0]!;
    assert.equal(req.url, '/ingest/clef');
    assert.equal(req.headers['content-type'], 'application/vnd.serilog.clef');
    assert.equal(req.headers['x-seq-apikey'], 'k-123');
    const [one, two] = seq.events;
    assert.equal(one!['@m'], 'first');
    assert.equal(one!['@l'], 'Information');
    assert.equal(one!.service, 'central-db-update-api');
    assert.equal(one!.token, '[redacted]');
    assert.equal(two!['@l'], 'Warning');
    assert.equal(two!.authorization, '[redacted]');
    assert.ok(!seq.events.some((e) => e.event === 'test.hidden'));
    assert.ok(!JSON.stringify(seq.events).includes('device-secret'));
  });

  it('never blocks on a dead Seq: the buffer stays bounded and drops are counted', async () => {
    const seq = await fakeSeq();
    servers.push(seq.server);
    seq.mode = 'down';
    const sink = new SeqSink({
      url: seq.url,
      maxBufferedEvents: 100,
      maxBatchEvents: 50,
      flushIntervalMs: 20,
    });
    const log = pino({ ...loggerOptions('dbupdate-service', 'info'), transport: undefined }, sink);
    for (let i = 0; i < 1000; i++) log.info({ event: 'test.flood', i }, 'flood');
    // Every write returned at once; at most 100 events are held, the rest are counted.
    assert.ok(sink.stats.buffered <= 100, `buffered ${sink.stats.buffered}`);
    await waitFor(async () => sink.stats.failedRequests >= 1, Boolean, 5000);
    assert.ok(sink.stats.dropped >= 900, `dropped ${sink.stats.dropped}`);

    const metrics = new CentralMetrics({ defaults: false });
    const text = await metrics.registry.metrics();
    const dropped = Number(/^dbupdate_log_events_dropped_total (\d+)/m.exec(text)?.[1]);
    assert.ok(dropped >= sink.stats.dropped, `metric ${dropped}`);

    // Seq comes back: the kept events arrive, newest last, none twice.
    seq.mode = 'ok';
    await sink.close(10_000);
    const arrived = seq.events.map((e) => e.i as number);
    assert.equal(arrived.length, 100);
    assert.equal(sink.stats.sent + sink.stats.dropped, 1000, 'every event sent or counted as dropped');
    assert.deepEqual(
      arrived,
      Array.from({ length: 100 }, (_, k) => 900 + k),
    );
  });

  it('gives up on a Seq that hangs after the request timeout, and keeps the events', async () => {
    const seq = await fakeSeq();
    servers.push(seq.server);
    seq.mode = 'hang';
    const sink = new SeqSink({ url: seq.url, requestTimeoutMs: 200, flushIntervalMs: 20 });
    sink.write(JSON.stringify({ level: 30, time: new Date().toISOString(), msg: 'kept' }) + '\n');
    await waitFor(async () => sink.stats.failedRequests >= 1, Boolean, 5000);
    assert.equal(sink.stats.buffered, 1);
    assert.equal(sink.stats.sent, 0);
    seq.mode = 'ok';
    await sink.close(5000);
    assert.equal(seq.events.at(-1)?.['@m'], 'kept');
  });
});
