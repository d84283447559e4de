/**
 * Whether a run found every module in Node's compile cache, told by the cache itself: a
 * module that misses gets an entry of its own, written when the process exits, so a run
 * that found everything adds no file. (A long run may rewrite entries it found, with the
 * code of functions it compiled since: not a miss.)
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The cache's entries, each with the SHA-256 of its bytes. */
export function cacheEntries(dir: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const file of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!file.isFile()) continue;
    const path = join(file.parentPath, file.name);
    entries.set(path.slice(dir.length), createHash('sha256').update(readFileSync(path)).digest('hex'));
  }
  return entries;
}

/** The entries added since `before` (a miss each). */
export function cacheMisses(dir: string, before: ReadonlyMap<string, string>): string[] {
  return [...cacheEntries(dir).keys()].filter((path) => !before.has(path));
}
