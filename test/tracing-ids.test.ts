/**
 * Tracing without an exporter (platform/tracing.ts, trace-ids.ts), as a service without a
 * collector runs: no SDK and no instrumentation is loaded, yet one sync's log lines on both
 * sides carry one trace id, passed from the edge to Central in a W3C `traceparent`, each
 * step with a span id of its own. Tracing starts before anything else is imported.
 */
import assert from 'node:assert/strict';
import { registerHooks } from 'node:module';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';

const loaded = new Set<string>();
registerHooks({
  resolve(specifier, ctx, next) {
    const resolved = next(specifier, ctx);
    loaded.add(resolved.url);
    return resolved;
  },
});
const { startTracing } = await import('../src/platform/tracing.ts');
const tracing = await startTracing({ serviceName: 'dbupdate-test', env: {} });

const { pino } = await import('pino');
const { loggerOptions } = await import('../src/platform/logger.ts');
const { startCentral, seedOneScope } = await import('./helpers/central.ts');
const { createTestDatabase } = await import('./helpers/db.ts');
const { edgeConfig } = await import('./helpers/edge.ts');
const { createSyncer } = await import('../src/edge/syncer.ts');

type Line = Record<string, unknown>;

function capture(service: string, lines: Line[]) {
  return pino(
    { ...loggerOptions(service, 'debug'), transport: undefined },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const text of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(text) as Line);
        done();
      },
    }),
  );
}

describe('tracing with nothing exported', () => {
  const centralLines: Line[] = [];
  const edgeLines: Line[] = [];
  const cleanup: Array<() => Promise<void>> = [];

  before(async () => {
    const central = await createTestDatabase('central');
    const edge = await createTestDatabase('edge');
    cleanup.push(
      () => edge[Symbol.asyncDispose](),
      () => central[Symbol.asyncDispose](),
    );
    const { mac, token } = await seedOneScope(central, 40);
    // No inline pieces: the pieces are fetched in a request of their own, which carries the trace too.
    const api = await startCentral(
      central,
      { INLINE_PIECES_KB: '0' },
      capture('central-db-update-api', centralLines),
    );
    cleanup.unshift(() => api[Symbol.asyncDispose]());
    const syncer = createSyncer(
      edgeConfig(edge, api.url, mac, token),
      edge.pool,
      capture('dbupdate-service', edgeLines),
    );
    assert.equal((await syncer.run('cli')).status, 'success');
  });
  after(async () => {
    for (const close of cleanup) await close();
  });

  const finish = (lines: Line[], name: string) => {
    const line = lines.find((l) => l.event === `${name}.finish`);
    assert.ok(line, `${name}.finish logged`);
    return line;
  };

  it('loads neither the SDK nor an instrumentation', () => {
    assert.equal(tracing.exporter, 'none');
    const heavy = [...loaded].filter((url) => /@opentelemetry\/(sdk-|instrumentation|resources)/.test(url));
    assert.deepEqual(heavy, []);
    assert.ok(
      [...loaded].some((url) => url.includes('/node_modules/fastify/')),
      'the servers were loaded',
    );
  });

  it("puts Central's steps in the edge's trace, over the request, the pieces and the ack", () => {
    const traceId = finish(edgeLines, 'sync').traceId;
    assert.match(String(traceId), /^[0-9a-f]{32}$/);
    for (const name of ['sync.pull', 'sync.fetch', 'sync.ack'])
      assert.equal(finish(edgeLines, name).traceId, traceId, name);
    for (const name of ['sync.request', 'device.resolve', 'snapshot.send', 'pieces.serve', 'ack.store'])
      assert.equal(finish(centralLines, name).traceId, traceId, name);
  });

  it('gives each step a span id of its own', () => {
    const steps = [...edgeLines, ...centralLines].filter((l) => String(l.event).endsWith('.finish'));
    const ids = steps.map((l) => l.spanId);
    assert.ok(ids.every((id) => /^[0-9a-f]{16}$/.test(String(id))));
    assert.equal(new Set(ids).size, ids.length);
  });
});
