/**
 * Request budgets per time window, in process. Hand-written rather than @fastify/rate-limit:
 * its limits run in a hook, keyed on what a request claims, while the per-device and overall
 * budgets must count only requests that proved who they are (so that nobody can spend a
 * device's budget, or the fleet's, without its credential).
 */
import type { LRUCache } from 'lru-cache';
import { growingLru } from './lru.ts';

export class FixedWindow {
  readonly #limit: number;
  readonly #windowMs: number;
  #windowStart = 0;
  #count = 0;

  constructor(limit: number, windowMs: number) {
    this.#limit = limit;
    this.#windowMs = windowMs;
  }

  /** 0 when the request may go ahead, else the seconds until the window resets. */
  take(now = Date.now()): number {
    if (now - this.#windowStart >= this.#windowMs) {
      this.#windowStart = now;
      this.#count = 0;
    }
    if (this.#count >= this.#limit)
      return Math.max(1, Math.ceil((this.#windowStart + this.#windowMs - now) / 1000));
    this.#count++;
    return 0;
  }
}

/**
 * A FixedWindow per key (a source address, a device), in bounded memory: the least
 * recently used keys are forgotten first, which at worst forgives a quiet key early.
 */
export class KeyedWindows {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #windows: LRUCache<string, FixedWindow>;

  constructor(limit: number, windowMs: number, maxKeys = 100_000) {
    this.#limit = limit;
    this.#windowMs = windowMs;
    this.#windows = growingLru(maxKeys, windowMs);
  }

  /** 0 when `key` may go ahead, else the seconds until its window resets. */
  take(key: string, now = Date.now()): number {
    let window = this.#windows.get(key);
    if (!window) {
      window = new FixedWindow(this.#limit, this.#windowMs);
      this.#windows.set(key, window);
    }
    return window.take(now);
  }
}
