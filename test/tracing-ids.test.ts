/**
 * Tracing without an exporter (platform/tracing.ts, trace-ids.ts), as a service without a
 * collector runs: no SDK and no instrumentation is loaded, yet one sync's log lines on both
 * sides carry one trace id, passed from the edge to Central in a W3C `traceparent`, each
 * step with a span id of its own. Tracing starts before anything else is imported.
 */
import assert from 'node:assert/strict';
import { registerHooks } from 'node:module';
import { after, before, describe, it } from 'node:test';
import type { Line } from './helpers/traced-sync.ts';

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

const { tracedSync } = await import('./helpers/traced-sync.ts');

describe('tracing with nothing exported', () => {
  let centralLines: Line[] = [];
  let edgeLines: Line[] = [];
  let close = async () => {};

  before(async () => {
    const sync = await tracedSync();
    ({ centralLines, edgeLines, close } = sync);
    assert.equal(sync.result.status, 'success');
  });
  after(() => close());

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

  it("logs Central's request lines in a server span of its own, under the edge's trace", () => {
    const traceId = finish(edgeLines, 'sync').traceId;
    const edgeSpans = new Set(edgeLines.map((l) => l.spanId));
    const requestLines = centralLines.filter((l) => l.reqId !== undefined && l.event === undefined);
    assert.ok(requestLines.length >= 3, `request lines: ${requestLines.length}`);
    for (const line of requestLines) {
      assert.equal(line.traceId, traceId, String(line.msg));
      assert.ok(!edgeSpans.has(line.spanId), `${String(line.msg)} has a span of Central's`);
    }
  });

  it('gives each step a span id of its own', () => {
    const steps = [...edgeLines, ...centralLines].filter((l) => String(l.event).endsWith('.finish'));
    const ids = steps.map((l) => l.spanId);
    assert.ok(ids.every((id) => /^[0-9a-f]{16}$/.test(String(id))));
    assert.equal(new Set(ids).size, ids.length);
  });
});
