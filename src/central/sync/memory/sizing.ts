/**
 * How much memory the table cache (TABLE_CACHE_MB) gets, decided once at start (Central logs
 * what it chose and why):
 *
 * | TABLE_CACHE_MB | → megabytes                                                                             |
 * |----------------|-----------------------------------------------------------------------------------------|
 * | a number       | that number: the operator's                                                             |
 * | `auto`         | 64 KB per location (a first-sync storm keeps each location's shared rows and pieces: about 50 KB measured, docs/scaling.md), at least 64 MB, at most a quarter of the memory Central is given (its cgroup's limit, else the machine's) |
 *
 * The fleet is counted at start: a fleet that grows by many locations is sized again by a restart.
 */
import { readFile } from 'node:fs/promises';
import { totalmem } from 'node:os';

const MB = 2 ** 20;
export const PER_LOCATION_BYTES = 64 * 1024;
export const FLOOR_MB = 64;

export interface Sized {
  mb: number;
  why: string;
}

export function sizeTableCache(setting: number | 'auto', locations: number, memoryBytes: number): Sized {
  if (setting !== 'auto') return { mb: setting, why: 'TABLE_CACHE_MB as set' };
  const wanted = Math.ceil((locations * PER_LOCATION_BYTES) / MB);
  const ceiling = Math.max(FLOOR_MB, Math.floor(memoryBytes / 4 / MB));
  const mb = Math.min(ceiling, Math.max(FLOOR_MB, wanted));
  const given = `${Math.round(memoryBytes / MB)} MB given`;
  const why =
    mb === wanted
      ? `${locations} locations × 64 KB`
      : mb === FLOOR_MB
        ? `${locations} locations × 64 KB is under the floor of ${FLOOR_MB} MB`
        : `${locations} locations × 64 KB = ${wanted} MB, capped at a quarter of the ${given}`;
  return { mb, why: `TABLE_CACHE_MB=auto: ${why} (${given})` };
}

/** The memory this process may use: its cgroup's limit (v2, then v1), else the machine's. */
export async function memoryGiven(): Promise<number> {
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    const text = (await readFile(file, 'utf8').catch(() => '')).trim();
    const bytes = Number(text);
    // "max" (v2) or a huge number (v1) means no limit.
    if (Number.isSafeInteger(bytes) && bytes > 0 && bytes < totalmem()) return bytes;
  }
  return totalmem();
}
