/**
 * The Node/V8 flags the program runs with, read from the one place that names them: the
 * shebang of bin/dbupdate.ts. The image's ENTRYPOINT is the script itself, so the shebang
 * applies there too; the compile-cache warmer and the benchmarks start Node with them, because V8
 * only accepts a code cache made under the same flags, and a benchmark should measure
 * what ships.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const ENTRY_POINT = join(import.meta.dirname, '../../bin/dbupdate.ts');

export function entryNodeFlags(): string[] {
  const shebang = readFileSync(ENTRY_POINT, 'utf8').split('\n', 1)[0]!;
  const match = /^#!\/usr\/bin\/env -S node((?: --[a-z0-9-]+(?:=\S+)?)*)$/.exec(shebang);
  if (!match) throw new Error(`unexpected shebang in ${ENTRY_POINT}: ${shebang}`);
  return match[1]!.split(' ').filter(Boolean);
}
