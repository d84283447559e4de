/**
 * Manifests' counts and hashes by device and scope version. The version changes, through
 * triggers, in the same transaction as any change to a row in the device's scope and is
 * read in the snapshot's own transaction, so a hit describes exactly the rows that snapshot sees:
 * an unchanged device gets its answer without Central reading a single row. Bounded LRU;
 * per process (replicas each keep their own, which is safe).
 */
import { LRUCache } from 'lru-cache';
import type { TableDigest } from '../../../contract/canonical.ts';
import type { Device } from '../../model.ts';
import { scopeVersionParts } from '../scope/version.ts';

export class DigestCache {
  readonly #cache: LRUCache<string, TableDigest[]>;
  /** The digests of the tables a location's devices share (all but `devices`). */
  readonly #shared: LRUCache<string, TableDigest[]>;

  constructor(maxEntries: number) {
    this.#cache = new LRUCache({ max: maxEntries });
    this.#shared = new LRUCache({ max: maxEntries });
  }

  /** By device, scope version and data-model version (an N-1 edge's digests are of fewer columns). */
  static key(device: Device, version: string, model: number): string {
    return `v${model}|${device.id}|${device.locationId}|${device.companyId}|${version}`;
  }

  /** By location and its part of the scope version (`<location version>:<device row xmin>`). */
  static sharedKey(device: Device, version: string, model: number): string {
    return DigestCache.locationKey(device, scopeVersionParts(version).location, model);
  }

  /** The same, by the location version alone (a batch of locations reads no device's row). */
  static locationKey(device: Device, locationVersion: string, model: number): string {
    return `v${model}|${device.locationId}|${device.companyId}|${locationVersion}`;
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
