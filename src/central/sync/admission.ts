/**
 * Admission of snapshot answers that stream rows: at most `max` at once. A request that
 * finds none free waits in a bounded queue for up to `waitMs` (a burst then costs latency,
 * not a retry), and beyond the queue or the wait it is shed with OVERLOADED and a
 * Retry-After drawn at random over a window wide enough for the slots to serve everyone
 * shed in the last minute at the rate they are being served now (at least 5–60 s, at most
 * 10 minutes), so that shed devices come back spread out rather than in one wave, and a
 * storm's retries arrive about as fast as they can be served. Piece fetches wait ahead of
 * new snapshot requests: they finish a sync whose manifest is already made, and shedding
 * them would waste that work (in a first-sync storm, most of it). (Hand-written: cockatiel's
 * bulkhead queues without a deadline, and a slot here outlives the call that took it: it is
 * held until the response closes.)
 */
import { AppError } from '../../platform/errors.ts';

export interface SlotOptions {
  max: number;
  queue: number;
  waitMs: number;
}

/**
 * The two gates of a snapshot answer. `answers` bounds the answers that send rows, whatever
 * they come from; `sessions` (narrower) bounds those that also hold a snapshot session, and
 * piece fetches that read theirs. An answer made from memory (its digests from the caches or
 * batched reads, its rows from the table cache) takes only the first: mostly it waits for a
 * batch, and with 16 slots for both, a first-sync storm of 100,000 devices was held to what 16
 * such waits pass a second (docs/scaling.md, sixth round).
 */
export interface AdmissionOptions extends SlotOptions {
  /** Answers at once (`max` is sessions at once). */
  answers: number;
  /**
   * Answers one device holds at once (requests and piece fetches alike). An edge asks one at a
   * time; without a bound, one device asking many times and never reading held every session.
   */
  perDevice: number;
}

export type SlotKind = 'answer' | 'session';

export class Admission {
  readonly #answers: SnapshotSlots;
  readonly #sessions: SnapshotSlots;
  readonly #perDevice: number;
  /** Answers in flight by device id (absent: none). */
  readonly #byDevice = new Map<string, number>();

  constructor(options: AdmissionOptions) {
    this.#answers = new SnapshotSlots({ ...options, max: options.answers });
    this.#sessions = new SnapshotSlots(options);
    this.#perDevice = options.perDevice;
  }

  /**
   * One request's slots, given back together by `free` (idempotent), which `take` also
   * resolves to. A request takes an answer slot before a session slot, never the other way
   * round, so no two wait on each other. `claim` counts the request against its device's
   * bound (an answer that sends rows, once it is authenticated; idempotent), throwing
   * RATE_LIMITED beyond it; `free` gives that back too.
   */
  forRequest(): {
    claim(deviceId: string): void;
    take(kind: SlotKind, priority?: 'first' | 'normal'): Promise<() => void>;
    free(): void;
    freeSession(): void;
  } {
    const held: (() => void)[] = [];
    let session: (() => void) | undefined;
    const free = () => held.forEach((release) => release());
    let claimed = false;
    return {
      // Once per request, however often asked: its first slot and its second are one answer.
      claim: (deviceId) => {
        if (claimed) return;
        held.push(this.#claim(deviceId));
        claimed = true;
      },
      take: async (kind, priority) => {
        const release = await (kind === 'answer' ? this.#answers : this.#sessions).take(priority);
        held.push(release);
        if (kind === 'session') session = release;
        return free;
      },
      free,
      // The session slot alone (releases are idempotent, so `free` may still call it).
      freeSession: () => session?.(),
    };
  }

  #claim(deviceId: string): () => void {
    const now = this.#byDevice.get(deviceId) ?? 0;
    if (now >= this.#perDevice)
      throw new AppError(
        'RATE_LIMITED',
        `this device already has ${now} answers in flight (MAX_ANSWERS_PER_DEVICE); read or close them first`,
        // Held answers end within the slow-reader window; a few seconds is enough for most.
        { details: { retryAfterSeconds: 5 + Math.floor(Math.random() * 10) } },
      );
    this.#byDevice.set(deviceId, now + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#byDevice.get(deviceId) ?? 1) - 1;
      if (left > 0) this.#byDevice.set(deviceId, left);
      else this.#byDevice.delete(deviceId);
    };
  }
}

/** The minute of history the Retry-After window is sized from, in 10-second buckets. */
const BUCKET_MS = 10_000;
const BUCKETS = 6;
const RETRY_MIN_SECONDS = 5;
const RETRY_WINDOW_MIN_SECONDS = 55;
const RETRY_MAX_SECONDS = 600;

/** Counts per 10-second bucket over the last minute. */
class MinuteCounter {
  readonly #counts = new Array<number>(BUCKETS).fill(0);
  #bucket = 0;

  add(now = Date.now()): void {
    this.#advance(now);
    this.#counts[this.#bucket % BUCKETS]!++;
  }

  total(now = Date.now()): number {
    this.#advance(now);
    return this.#counts.reduce((a, b) => a + b, 0);
  }

  #advance(now: number): void {
    const bucket = Math.floor(now / BUCKET_MS);
    for (let b = Math.max(this.#bucket + 1, bucket - BUCKETS + 1); b <= bucket; b++)
      this.#counts[b % BUCKETS] = 0;
    this.#bucket = Math.max(this.#bucket, bucket);
  }
}

export class SnapshotSlots {
  readonly #o: SlotOptions;
  #inFlight = 0;
  readonly #served = new MinuteCounter();
  readonly #shedCount = new MinuteCounter();
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
      this.#served.add();
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

  /** Seconds over which the devices shed in the last minute can be served at the current rate. */
  retryWindowSeconds(): number {
    const perSecond = Math.max(1, this.#served.total() / ((BUCKETS * BUCKET_MS) / 1000));
    const backlog = this.#shedCount.total() / perSecond;
    return Math.min(RETRY_MAX_SECONDS - RETRY_MIN_SECONDS, Math.max(RETRY_WINDOW_MIN_SECONDS, backlog));
  }

  #shed(): AppError {
    this.#shedCount.add();
    return new AppError(
      'OVERLOADED',
      `${this.#inFlight} snapshots are being sent and ${this.#first.length + this.#waiting.length} wait; retry later`,
      {
        details: {
          retryAfterSeconds: RETRY_MIN_SECONDS + Math.floor(Math.random() * this.retryWindowSeconds()),
        },
      },
    );
  }
}
