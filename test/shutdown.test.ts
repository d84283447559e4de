/**
 * A service told to stop exits within the shutdown bound, even when something it waits for
 * never ends (issue 32: a stranded snapshot session kept Central from exiting on SIGTERM).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { it } from 'node:test';

it('exits with status 1 and says why when stopping outlasts the bound', async () => {
  const lifecycle = resolve('src/platform/lifecycle.ts');
  const script = `
    import pino from 'pino';
    import { stopOnSignal } from ${JSON.stringify(lifecycle)};
    stopOnSignal(pino(), () => new Promise(() => {}), 500);
    setInterval(() => {}, 1000); // work that never ends
    console.log('ready');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  while (!out.includes('ready')) await once(child.stdout, 'data');
  const started = performance.now();
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  const ms = performance.now() - started;
  assert.equal(code, 1);
  assert.ok(ms < 5_000, `exited after ${Math.round(ms)} ms`);
  assert.match(out, /"event":"shutdown.finish","outcome":"timeout"/);
});
