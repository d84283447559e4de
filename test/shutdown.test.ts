/**
 * A service told to stop exits within the shutdown bound, even when something it waits for
 * never ends (issue 32: a stranded snapshot session kept Central from exiting on SIGTERM).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { it } from 'node:test';

/** Runs `script` (which prints `ready`), sends it SIGTERM, and says how it ended and how fast. */
async function stopped(script: string, env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  while (!out.includes('ready')) await once(child.stdout, 'data');
  const started = performance.now();
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, ms: performance.now() - started, out };
}

it('exits with status 1 and says why when stopping outlasts the bound', async () => {
  const lifecycle = resolve('src/platform/lifecycle.ts');
  const script = `
    import pino from 'pino';
    import { stopOnSignal } from ${JSON.stringify(lifecycle)};
    stopOnSignal(pino(), () => new Promise(() => {}), 500);
    setInterval(() => {}, 1000); // work that never ends
    console.log('ready');`;
  const { code, ms, out } = await stopped(script);
  assert.equal(code, 1);
  assert.ok(ms < 5_000, `exited after ${Math.round(ms)} ms`);
  assert.match(out, /"event":"shutdown.finish","outcome":"timeout"/);
});

it('exits 0 at once when the collector and Seq it sends to are not there', async () => {
  // As a Compose stack started without its observability profile: the API's stop took 8 s
  // (the bound) because the trace exporter's retries and the Seq sink's kept it alive.
  const platform = (name: string) => JSON.stringify(resolve(`src/platform/${name}.ts`));
  const script = `
    import { trace } from '@opentelemetry/api';
    import { startTracing } from ${platform('tracing')};
    import { createLogger } from ${platform('logger')};
    import { stopOnSignal } from ${platform('lifecycle')};
    await startTracing({ serviceName: 'shutdown-test' });
    const log = createLogger('shutdown-test', 'info', { LOG_FORMAT: 'json', SEQ_URL: 'http://127.0.0.1:9' });
    const server = setInterval(() => {}, 1000); // the service, which its stop closes
    stopOnSignal(log, async () => clearInterval(server));
    trace.getTracer('shutdown-test').startActiveSpan('work', (span) => {
      log.info({ event: 'work' }, 'a span and a log event to send');
      span.end();
    });
    console.log('ready');`;
  const { code, ms, out } = await stopped(script, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' });
  assert.equal(code, 0, out);
  assert.ok(ms < 4_000, `exited after ${Math.round(ms)} ms`);
  assert.match(out, /"event":"shutdown.finish","outcome":"success"/);
});
