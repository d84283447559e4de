/**
 * An overall request budget per time window. Hand-written because @fastify/rate-limit
 * applies one limit per route and we need two on the device routes: per device
 * (the plugin) and for everyone together (this).
 */
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
