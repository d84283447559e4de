/**
 * A task run every so often: the interval counts from the end of the previous run, so
 * runs never overlap, and each waits a random 0..jitter first, so a fleet started
 * together spreads out. A fixed interval needs no calendar, hence no cron expression.
 */
export interface Schedule {
  /** Cancels the next run (or its jitter wait) and resolves once a running task ended. */
  stop(): Promise<void>;
}

export function repeatEvery(intervalMs: number, jitterMs: number, task: () => Promise<unknown>): Schedule {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  const next = (delayMs: number) => {
    timer = setTimeout(() => {
      if (stopped) return;
      running = task()
        .catch(() => undefined)
        .finally(() => {
          if (!stopped) next(intervalMs + Math.random() * jitterMs);
        });
    }, delayMs);
  };
  next(intervalMs + Math.random() * jitterMs);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
