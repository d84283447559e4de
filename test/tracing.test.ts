/**
 * One trace across both services: edge sync → HTTP client → Central HTTP server →
 * device resolve, scope, manifest, snapshot → edge load per table → verify → ack, with
 * PostgreSQL query spans under them and the manifest id on the spans; and every step's
 * log lines carry the trace id. Tracing must start before pg, fastify and undici load,
 * so everything else is imported afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { startTracing } from '../src/platform/tracing.ts';
import type { Line } from './helpers/traced-sync.ts';

const exporter = new InMemorySpanExporter();
await startTracing({ serviceName: 'dbupdate-test', exporter, env: {} });

const { tracedSync } = await import('./helpers/traced-sync.ts');

const EDGE_STEPS = [
  'sync.pull',
  'sync.validate',
  'sync.plan',
  'sync.fetch',
  'sync.load',
  'sync.verify',
  'sync.commit',
  'sync.ack',
];
const CENTRAL_STEPS = [
  'sync.request',
  'device.resolve',
  'scope.own_row',
  'pieces.serve',
  'manifest.create',
  'snapshot.send',
  'ack.store',
];

describe('tracing', () => {
  let centralLines: Line[] = [];
  let edgeLines: Line[] = [];
  let spans: ReadableSpan[] = [];
  let manifestId = '';
  let deviceMac = '';
  let close = async () => {};

  before(async () => {
    const sync = await tracedSync(() => exporter.reset());
    ({ centralLines, edgeLines, close, mac: deviceMac } = sync);
    assert.equal(sync.result.status, 'success');
    manifestId = sync.result.manifestId!;
    // The central request span ends when the response is closed, just after the edge read it.
    const deadline = Date.now() + 5000;
    while (!exporter.getFinishedSpans().some((s) => s.name === 'sync.request') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    spans = exporter.getFinishedSpans();
  });
  after(() => close());

  const named = (name: string) => spans.filter((s) => s.name === name);
  const one = (name: string) => {
    const found = named(name);
    assert.equal(found.length, 1, `one ${name} span, got ${found.length}`);
    return found[0]!;
  };
  const parentOf = (span: ReadableSpan) =>
    spans.find((s) => s.spanContext().spanId === span.parentSpanContext?.spanId);
  /** The names on the path from a span up to the trace's root. */
  const ancestry = (span: ReadableSpan): string[] => {
    const names: string[] = [];
    for (let p = parentOf(span); p; p = parentOf(p)) names.push(`${p.name}:${SpanKind[p.kind]}`);
    return names;
  };

  it('puts the whole sync, on both sides, in one trace', () => {
    const root = one('sync');
    const traceId = root.spanContext().traceId;
    assert.equal(root.parentSpanContext, undefined, 'the edge sync starts the trace');
    for (const name of EDGE_STEPS) {
      assert.equal(one(name).spanContext().traceId, traceId, name);
    }
    for (const name of CENTRAL_STEPS) {
      assert.equal(one(name).spanContext().traceId, traceId, name);
    }
    // The first device of its location: its shared tables are read in a batch of locations,
    // in a trace of its own linked to the request's step that waited for it; no session of
    // its own. The batch kept the pieces, so the fetch reads none.
    assert.equal(named('snapshot.open').length, 0);
    const batch = one('scope.shared_batch');
    assert.notEqual(batch.spanContext().traceId, traceId);
    assert.equal(batch.parentSpanContext, undefined);
    assert.deepEqual(
      batch.links.map((l) => l.context.spanId),
      [one('scope.own_row').spanContext().spanId],
    );
    assert.equal(named('sync.load.table').length, 8, 'a load span per table');
  });

  it('links Central under the edge through the HTTP client and server spans (W3C traceparent)', () => {
    const request = one('sync.request');
    assert.deepEqual(ancestry(request).slice(0, 4), [
      'POST:SERVER',
      'POST:CLIENT',
      'sync.pull:INTERNAL',
      'sync:INTERNAL',
    ]);
    const server = parentOf(request)!;
    assert.equal(
      String(server.attributes['url.path'] ?? server.attributes['http.target']),
      '/api/device-sync/request',
    );
    assert.equal(server.attributes['dbupdate.manifest_id'], manifestId);
    for (const name of ['device.resolve', 'scope.own_row', 'manifest.create', 'snapshot.send'])
      assert.equal(parentOf(one(name))?.name, 'sync.request', name);
    assert.deepEqual(ancestry(one('pieces.serve')).slice(0, 4), [
      'POST:SERVER',
      'POST:CLIENT',
      'sync.fetch:INTERNAL',
      'sync:INTERNAL',
    ]);
    const ackStore = one('ack.store');
    assert.deepEqual(ancestry(ackStore).slice(0, 4), [
      'POST:SERVER',
      'POST:CLIENT',
      'sync.ack:INTERNAL',
      'sync:INTERNAL',
    ]);
  });

  it('puts PostgreSQL queries under the steps that ran them', () => {
    const queries = spans.filter((s) => s.instrumentationScope.name === '@opentelemetry/instrumentation-pg');
    assert.ok(queries.length > 10, `pg spans: ${queries.length}`);
    const parents = new Set(queries.map((q) => parentOf(q)?.name));
    // COPY runs as a pg-copy-streams submittable, which the pg instrumentation does not
    // trace; the scope.shared_batch and sync.load.table spans stand for those statements.
    // The batch's session is opened and its locations' versions read under scope.shared_batch.
    for (const step of [
      'scope.shared_batch',
      'manifest.create',
      'ack.store',
      'sync.load',
      'sync.verify',
      'sync.commit',
    ])
      assert.ok(parents.has(step), `queries under ${step}: ${[...parents].join(', ')}`);
    for (const q of queries) {
      assert.ok(!JSON.stringify(q.attributes).includes(deviceMac), 'no parameter values');
    }
  });

  it('carries the manifest id and the device on the step spans', () => {
    for (const name of [
      'sync.load',
      'sync.verify',
      'sync.commit',
      'snapshot.send',
      'ack.store',
      'sync.request',
    ]) {
      assert.equal(one(name).attributes['dbupdate.manifest_id'], manifestId, name);
    }
    const tables = named('sync.load.table')
      .map((s) => s.attributes['dbupdate.table'])
      .sort();
    assert.deepEqual(tables, [...new Set(tables)], 'each table once');
    assert.ok(one('sync').attributes['dbupdate.device']);
    assert.equal(
      one('device.resolve').attributes['dbupdate.device'],
      one('sync').attributes['dbupdate.device'],
    );
  });

  it('writes a start and a finish event for every step, with the trace id', () => {
    const traceId = one('sync').spanContext().traceId;
    const steps = (lines: Line[]) => lines.filter((l) => typeof l.event === 'string');
    const expectPair = (lines: Line[], name: string) => {
      const start = steps(lines).find((l) => l.event === `${name}.start`);
      const finish = steps(lines).find((l) => l.event === `${name}.finish`);
      assert.ok(start && finish, `${name}: start and finish`);
      assert.equal(finish.outcome, 'success', name);
      assert.equal(typeof finish.durationMs, 'number', name);
      assert.equal(start.traceId, traceId, `${name} start has the trace id`);
      assert.equal(finish.traceId, traceId, `${name} finish has the trace id`);
      assert.ok(finish.device, `${name} names the device`);
      return finish;
    };
    for (const name of [...EDGE_STEPS, 'sync.load.table']) expectPair(edgeLines, name);
    for (const name of CENTRAL_STEPS) expectPair(centralLines, name);
    for (const name of ['sync.load', 'sync.verify', 'sync.commit', 'sync.ack'])
      assert.equal(expectPair(edgeLines, name).manifestId, manifestId, name);
    for (const name of ['snapshot.send', 'ack.store'])
      assert.equal(expectPair(centralLines, name).manifestId, manifestId, name);
  });
});
