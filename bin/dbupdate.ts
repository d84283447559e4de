#!/usr/bin/env -S node --no-allocation-site-pretenuring
// (The flag, the only copy of it: the Dockerfile says why, docs/scaling.md measures it. The
// young generation differs by service, so each image sets it in its NODE_OPTIONS.)
// Tracing first: its instrumentations hook `pg`, `fastify` and `undici` as they load,
// so the rest of the program is imported only afterwards.
import { serviceNameFor, shutdownTracing, startTracing } from '../src/platform/tracing.ts';

try {
  await startTracing({ serviceName: serviceNameFor(process.argv[2]) });
} catch (err) {
  console.error(`error ${(err as { code?: string }).code ?? 'CONFIG_INVALID'}: ${(err as Error).message}`);
  process.exit(2);
}
const { main } = await import('../src/cli/main.ts');
const code = await main(process.argv.slice(2));
// serve commands return -1: they run until a signal, and exit when their handles close.
if (code >= 0) {
  await shutdownTracing();
  process.exit(code);
}
