/**
 * Admission of snapshot answers that stream rows: at most `max` at once. A request that
 * finds none free waits in a bounded queue for up to `waitMs` (a burst then costs latency,
 * not a retry), and beyond the queue or the wait it is shed with OVERLOADED and a
 * Retry-After drawn at random over a wide range, so that shed devices come back spread
 * out rather than in one wave. Piece fetches wait ahead of new snapshot requests: they finish
 * a sync whose manifest is already made, and shedding them would waste that work (in a
 * first-sync storm, most of it). (Hand-written: cockatiel's bulkhead queues without a
 * deadline, and a slot here outlives the call that took it: it is held until the response closes.)
 */
import { AppError } from '../../platform/errors.ts';

export interface SlotOptions {
  max: number;
  queue: number;
  waitMs: number;
}

export class SnapshotSlots {
  readonly #o: SlotOptions;
  #inFlight = 0;
  readonly #waiting: (() => void)[] = [];
  /** Waiters served before #waiting (piece fetches). */
  readonly #first: (() => void)[] = [];

  constructor(options: SlotOptions) {
    this.#o = options;
  }

  /** A slot, or OVERLOADED; the returned function gives it back (once, however often called). */
  async take(priority: 'first' | 'normal' = 'normal'): Promise<() => void> {
    // A freed slot passes straight to the first waiter (the count stays), so a newcomer can
    // neither jump the queue nor take the slot between the release and the waiter's turn.
    if (this.#inFlight >= this.#o.max) await this.#wait(priority === 'first' ? this.#first : this.#waiting);
    else this.#inFlight++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#first.shift() ?? this.#waiting.shift();
      if (next) next();
      else this.#inFlight--;
    };
  }

  async #wait(queue: (() => void)[]): Promise<void> {
    if (queue.length >= this.#o.queue || this.#o.waitMs <= 0) throw this.#shed();
    await new Promise<void>((resolve, reject) => {
      const turn = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        queue.splice(queue.indexOf(turn), 1);
        reject(this.#shed());
      }, this.#o.waitMs);
      queue.push(turn);
    });
  }

  #shed(): AppError {
    return new AppError(
      'OVERLOADED',
      `${this.#inFlight} snapshots are being sent and ${this.#first.length + this.#waiting.length} wait; retry later`,
      {
        details: { retryAfterSeconds: 5 + Math.floor(Math.random() * 55) },
      },
    );
  }
}
