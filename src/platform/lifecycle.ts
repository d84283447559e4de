/**
 * Graceful shutdown for a long-running service: the first SIGTERM or SIGINT runs `stop` once,
 * bounded: a stop that has not finished within `boundMs` (an answer or a connection that never
 * ends) is logged and the process exits anyway, so an orchestrator's stop is never a kill.
 */
import type { Logger } from './logger.ts';
import { shutdownTracing } from './tracing.ts';
import { closeSeqSinks } from './seq.ts';

/** Under Docker's and Compose's default grace (10 s), so the log line is written before a SIGKILL. */
export const SHUTDOWN_BOUND_MS = 8_000;

export function stopOnSignal(log: Logger, stop: () => Promise<void>, boundMs = SHUTDOWN_BOUND_MS): void {
  let closing = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (closing) return;
    closing = true;
    log.info({ event: 'shutdown.start', signal }, 'shutting down');
    const bound = setTimeout(() => {
      log.error(
        { event: 'shutdown.finish', outcome: 'timeout', boundMs },
        `shutdown did not finish within ${boundMs} ms (work still in flight); exiting anyway`,
      );
      // The one place a process is ended from inside: whatever still runs is what stalled the stop.
      process.exit(1);
    }, boundMs);
    bound.unref();
    try {
      await stop();
      log.info({ event: 'shutdown.finish', outcome: 'success' }, 'stopped');
      // The last spans (the shutdown's own requests included) leave before the process does.
      await shutdownTracing();
      await closeSeqSinks();
    } catch (err) {
      log.error({ event: 'shutdown.finish', outcome: 'error', err }, 'shutdown failed');
      process.exitCode = 1;
    } finally {
      clearTimeout(bound);
    }
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}
