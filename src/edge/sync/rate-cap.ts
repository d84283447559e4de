/**
 * The download rate cap (DOWNLOAD_RATE_KBPS; docs/releases.md): a token bucket over the bytes
 * that cross the link from Central, compressed as they travel. undici counts them as they
 * arrive (an interceptor on the connection pool); the reader of each answer then waits until
 * the bucket has paid for them. A reader that waits stops reading, so the socket's window
 * fills and Central sends no faster: a site on a metered link is never saturated by a sync.
 * The bucket holds one second of the rate, so a burst is at most a second's worth.
 */
import type { Dispatcher } from 'undici';

export class RateCap {
  readonly #bytesPerSecond: number;
  #tokens: number;
  #at = performance.now();
  /** Bytes counted off the link and not yet paid for. */
  #unpaid = 0;

  constructor(kilobytesPerSecond: number) {
    this.#bytesPerSecond = kilobytesPerSecond * 1024;
    this.#tokens = this.#bytesPerSecond;
  }

  get bytesPerSecond(): number {
    return this.#bytesPerSecond;
  }

  /** Counts every response byte as the connection receives it, before it is decompressed. */
  readonly interceptor: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) =>
    dispatch(opts, this.#counting(handler));

  /** Waits until the bytes received so far are paid for. */
  async settle(): Promise<void> {
    this.#refill();
    this.#tokens -= this.#unpaid;
    this.#unpaid = 0;
    while (this.#tokens < 0) {
      await new Promise((resolve) =>
        setTimeout(resolve, Math.ceil((-this.#tokens * 1000) / this.#bytesPerSecond)),
      );
      this.#refill();
    }
  }

  #refill(): void {
    const now = performance.now();
    this.#tokens = Math.min(
      this.#bytesPerSecond,
      this.#tokens + ((now - this.#at) * this.#bytesPerSecond) / 1000,
    );
    this.#at = now;
  }

  #counting(handler: Dispatcher.DispatchHandler): Dispatcher.DispatchHandler {
    const count = (chunk: Buffer) => (this.#unpaid += chunk.length);
    // Both handler styles undici may hand over; every other call passes through untouched.
    return new Proxy(handler, {
      get(target, key, receiver) {
        const value: unknown = Reflect.get(target, key, receiver);
        if (typeof value !== 'function') return value;
        if (key === 'onResponseData')
          return (controller: unknown, chunk: Buffer) => {
            count(chunk);
            return (value as (c: unknown, b: Buffer) => unknown).call(target, controller, chunk);
          };
        if (key === 'onData')
          return (chunk: Buffer) => {
            count(chunk);
            return (value as (b: Buffer) => unknown).call(target, chunk);
          };
        return (value as (...args: unknown[]) => unknown).bind(target);
      },
    });
  }
}
