/**
 * Natural batching of small statements. Items that arrive while `concurrency` runs are in
 * flight wait and go together, up to `maxItems`, in the next run: an idle service runs
 * each item at once, a busy one serves many requests per round trip. Runs also start at
 * least `minGapMs` apart (unless a full batch waits): without that, the faster a statement
 * gets, the smaller its batches and the more round trips the same load costs. On a loaded machine
 * the socket calls of a round trip cost more CPU than the statement itself, and a fleet's
 * unchanged answers are mostly round trips (docs/scaling.md).
 *
 * Hand-written rather than DataLoader: DataLoader gathers what arrives within one tick of
 * the event loop, which under load still sends about one statement per request.
 */
export interface BatcherOptions {
  /** Items per run at most. */
  maxItems: number;
  /** Runs in flight at once (each holds one pooled connection for one statement). */
  concurrency: number;
  /**
   * A run starts at least this long after the previous one started, unless `maxItems` wait:
   * the most an item waits for company. 0 (the default): at once.
   */
  minGapMs?: number;
}

interface Waiting<T, R> {
  item: T;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

export class Batcher<T, R> {
  readonly #run: (items: readonly T[]) => Promise<readonly R[]>;
  readonly #options: BatcherOptions;
  #waiting: Waiting<T, R>[] = [];
  #inFlight = 0;
  #lastStart = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;

  /** `run` answers one result per item, in the items' order. */
  constructor(run: (items: readonly T[]) => Promise<readonly R[]>, options: BatcherOptions) {
    this.#run = run;
    this.#options = options;
  }

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    const gap = this.#options.minGapMs ?? 0;
    while (this.#inFlight < this.#options.concurrency && this.#waiting.length > 0) {
      const early = this.#lastStart + gap - performance.now();
      if (early > 0 && this.#waiting.length < this.#options.maxItems) {
        if (!this.#timer)
          this.#timer = setTimeout(() => {
            this.#timer = undefined;
            this.#pump();
          }, early);
        return;
      }
      this.#lastStart = performance.now();
      const batch = this.#waiting.splice(0, this.#options.maxItems);
      this.#inFlight++;
      void this.#flush(batch).finally(() => {
        this.#inFlight--;
        this.#pump();
      });
    }
  }

  async #flush(batch: Waiting<T, R>[]): Promise<void> {
    try {
      const results = await this.#run(batch.map((w) => w.item));
      batch.forEach((w, i) => w.resolve(results[i]!));
    } catch (err) {
      if (batch.length === 1 || !isDataError(err)) return batch.forEach((w) => w.reject(err));
      // One bad item must not fail its neighbours: each is tried alone, so only it fails.
      // (The statement failed whole, so it wrote nothing.)
      for (const w of batch) await this.#run([w.item]).then((r) => w.resolve(r[0]!), w.reject);
    }
  }
}

/** PostgreSQL's classes 22 (data exception) and 23 (integrity): the fault of an item, not of the database. */
function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^2[23]/.test(code);
}
