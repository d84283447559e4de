/**
 * Fills Node's compile cache (the directory in NODE_COMPILE_CACHE) with every module of
 * the program. A process that finds its modules there skips TypeScript type stripping
 * and most of V8's parsing: it starts in about half the time and holds about 14 MB less
 * (docs/scaling.md, Memory). Node keys the cache by file path and content, so a changed
 * file is simply stripped again. The image runs this at build time, the benchmarks before
 * they measure.
 */
import { spawnSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ENTRY_POINT, entryNodeFlags } from '../src/platform/node-flags.ts';

const cacheDir = process.env.NODE_COMPILE_CACHE;
if (!cacheDir) {
  console.error('warm-compile-cache: NODE_COMPILE_CACHE is not set, nothing to fill');
  process.exit(2);
}
const src = join(import.meta.dirname, '../src');
const modules = (await readdir(src, { recursive: true }))
  .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
  .map((file) => join(src, file))
  .sort();
// One process with the entry point's flags (V8 rejects a code cache made under other
// flags) preloads every module, which only loads it, then runs the entry point's help.
const run = spawnSync(
  process.execPath,
  [...entryNodeFlags(), ...modules.flatMap((file) => ['--import', file]), ENTRY_POINT, '--help'],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
if (run.status !== 0) {
  console.error(`warm-compile-cache: loading the modules failed (exit ${run.status})`);
  process.exit(1);
}
console.log(`warm-compile-cache: ${modules.length + 1} modules cached in ${cacheDir}`);
