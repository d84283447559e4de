/**
 * Manifests' counts and hashes by device and scope version (keys made by memory.ts). The version changes, through
 * triggers, in the same transaction as any change to a row in the device's scope and is
 * read in the snapshot's own transaction, so a hit describes exactly the rows that snapshot sees:
 * an unchanged device gets its answer without Central reading a single row. Bounded LRU;
 * per process (replicas each keep their own, which is safe).
 */
import type { LRUCache } from 'lru-cache';
import { growingLru } from '../../../platform/lru.ts';
import type { TableDigest } from '../../../contract/canonical.ts';

export class DigestCache {
  readonly #cache: LRUCache<string, TableDigest[]>;
  /** The digests of the tables a location's devices share (all but `devices`). */
  readonly #shared: LRUCache<string, TableDigest[]>;

  constructor(maxEntries: number) {
    this.#cache = growingLru(maxEntries);
    this.#shared = growingLru(maxEntries);
  }

  getShared(key: string): TableDigest[] | undefined {
    return this.#shared.get(key);
  }

  setShared(key: string, digests: TableDigest[]): void {
    this.#shared.set(key, digests);
  }

  get(key: string): TableDigest[] | undefined {
    return this.#cache.get(key);
  }

  set(key: string, digests: TableDigest[]): void {
    this.#cache.set(key, digests);
  }
}
