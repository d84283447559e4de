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
/** The most the last spans and the last log events may each take to leave at shutdown. */
const TELEMETRY_FLUSH_MS = 1_000;

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
      // Ended from inside while work still runs: whatever it is stalled the stop.
      process.exit(1);
    }, boundMs);
    bound.unref();
    try {
      await stop();
      log.info({ event: 'shutdown.finish', outcome: 'success' }, 'stopped');
      // The last spans (the shutdown's own requests included) and log events leave before the
      // process does, each bounded: a collector or Seq that is not there gets one short try.
      await shutdownTracing(TELEMETRY_FLUSH_MS);
      await closeSeqSinks(TELEMETRY_FLUSH_MS);
    } catch (err) {
      log.error({ event: 'shutdown.finish', outcome: 'error', err }, 'shutdown failed');
      process.exitCode = 1;
    } finally {
      clearTimeout(bound);
    }
    // The work is done. An exporter's retry timer or socket, left by telemetry that could not
    // be delivered, must not hold the process until the bound (Compose's stop took 8 s).
    process.exit();
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}
