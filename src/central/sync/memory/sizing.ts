/**
 * How much memory the table cache (TABLE_CACHE_MB) gets, decided once at start (Central logs
 * what it chose and why):
 *
 * | TABLE_CACHE_MB | → megabytes                                                                             |
 * |----------------|-----------------------------------------------------------------------------------------|
 * | a number       | that number: the operator's                                                             |
 * | `auto`         | enough for every location's shared rows: the larger of 64 KB per location (a 40-user location's shared rows and pieces are about 50 KB, docs/scaling.md) and the size of the shared tables themselves (larger locations), counted up to 1 MB a location; at least 32 MB (500 such locations), at most a quarter of the memory Central is given (its cgroup's limit, else the machine's) |
 *
 * The fleet is counted at start: a fleet that grows by many locations is sized again by a restart.
 * The cache is for what many locations' devices ask for within an interval: the shared tables
 * count up to 1 MB a location on average, so a fleet of few locations with huge scopes (one
 * company of a million users) streams them from PostgreSQL to its devices rather than holding
 * them all.
 */
import { readFile } from 'node:fs/promises';
import { totalmem } from 'node:os';

const MB = 2 ** 20;
const PER_LOCATION_BYTES = 64 * 1024;
const FLOOR_MB = 32;
const LOCATION_CAP_BYTES = MB;

export interface Sized {
  mb: number;
  why: string;
}

/** What Central counts of its fleet at start. */
export interface FleetSize {
  locations: number;
  /** The on-disk size of the tables a location's devices share (all but `devices`). */
  sharedBytes: number;
}

export function sizeTableCache(setting: number | 'auto', fleet: FleetSize, memoryBytes: number): Sized {
  if (setting !== 'auto') return { mb: setting, why: 'TABLE_CACHE_MB as set' };
  const perLocation = Math.ceil((fleet.locations * PER_LOCATION_BYTES) / MB);
  const shared = Math.ceil(Math.min(fleet.sharedBytes, fleet.locations * LOCATION_CAP_BYTES) / MB);
  const wanted = Math.max(perLocation, shared);
  const ceiling = Math.max(FLOOR_MB, Math.floor(memoryBytes / 4 / MB));
  const mb = Math.min(ceiling, Math.max(FLOOR_MB, wanted));
  const given = `${Math.round(memoryBytes / MB)} MB given`;
  const reason =
    shared > perLocation
      ? `the ${fleet.locations} locations' shared tables hold ${shared} MB`
      : `${fleet.locations} locations × 64 KB`;
  const why =
    mb === wanted
      ? reason
      : mb === FLOOR_MB
        ? `${reason}, under the floor of ${FLOOR_MB} MB`
        : `${reason}, capped at a quarter of the ${given}`;
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
