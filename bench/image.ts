/**
 * How our container image starts Node, so benchmarks measure what ships: the entry point's
 * V8 flags, the image's NODE_OPTIONS and allocator setting, and a compile cache filled
 * the way the image build fills it (here under node_modules/.cache). A NODE_OPTIONS of
 * the caller's (say --inspect) comes after the image's, so it wins.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { readDockerfile } from '../scripts/lib/compose.ts';
import { ENTRY_POINT, entryNodeFlags } from '../src/platform/node-flags.ts';

const COMPILE_CACHE = join(import.meta.dirname, '../node_modules/.cache/dbupdate-compile');
const images = readDockerfile('Dockerfile');
const image = images.central!;

/** The environment Node gets in the image of one service (each sets its own young generation). */
export function imageNodeEnv(target: 'central' | 'edge' = 'central'): Record<string, string> {
  const env = images[target]!.env;
  const options = [env.NODE_OPTIONS, process.env.NODE_OPTIONS].filter(Boolean).join(' ');
  return {
    ...(options ? { NODE_OPTIONS: options } : {}),
    ...(env.MALLOC_ARENA_MAX ? { MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX } : {}),
    ...(env.NODE_COMPILE_CACHE ? { NODE_COMPILE_CACHE: COMPILE_CACHE } : {}),
  };
}

/**
 * Node's arguments before the command, as the image runs them: its ENTRYPOINT is
 * bin/dbupdate.ts itself, so Node gets the script's shebang flags, then the script.
 */
export function imageNodeArgs(): string[] {
  if (image.entrypoint.join(' ') !== '/app/bin/dbupdate.ts')
    throw new Error(`the image's ENTRYPOINT is not bin/dbupdate.ts: ${image.entrypoint}`);
  return [...entryNodeFlags(), ENTRY_POINT];
}

let warmed = false;

/** Fills the compile cache as the image build does (once per benchmark run). */
export function warmCompileCache(): void {
  if (warmed || !image.env.NODE_COMPILE_CACHE) return;
  const run = spawnSync(process.execPath, ['scripts/warm-compile-cache.ts'], {
    env: { ...process.env, ...imageNodeEnv() },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (run.status !== 0) throw new Error('scripts/warm-compile-cache.ts failed');
  warmed = true;
}
