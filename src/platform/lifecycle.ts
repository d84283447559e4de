/** Graceful shutdown for a long-running service: the first SIGTERM or SIGINT runs `stop` once. */
import type { Logger } from './logger.ts';
import { shutdownTracing } from './tracing.ts';
import { closeSeqSinks } from './seq.ts';

export function stopOnSignal(log: Logger, stop: () => Promise<void>): void {
  let closing = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (closing) return;
    closing = true;
    log.info({ event: 'shutdown.start', signal }, 'shutting down');
    try {
      await stop();
      log.info({ event: 'shutdown.finish', outcome: 'success' }, 'stopped');
      // The last spans (the shutdown's own requests included) leave before the process does.
      await shutdownTracing();
      await closeSeqSinks();
    } catch (err) {
      log.error({ event: 'shutdown.finish', outcome: 'error', err }, 'shutdown failed');
      process.exitCode = 1;
    }
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}
