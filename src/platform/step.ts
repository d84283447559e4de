/**
 * The step model: every unit of work logs a start and a finish event (with outcome
 * and duration, on success and on error) under one name, so a sync can be followed
 * step by step in any log viewer.
 */
import type { Logger } from './logger.ts';

export async function step<T>(
  log: Logger,
  name: string,
  fields: Record<string, unknown>,
  work: () => Promise<T>,
): Promise<T> {
  const started = performance.now();
  log.debug({ ...fields, event: `${name}.start` }, `${name} started`);
  try {
    const result = await work();
    const durationMs = Math.round(performance.now() - started);
    log.info({ ...fields, event: `${name}.finish`, outcome: 'success', durationMs }, `${name} finished`);
    return result;
  } catch (err) {
    const durationMs = Math.round(performance.now() - started);
    const code = (err as { code?: unknown }).code;
    log.warn(
      { ...fields, event: `${name}.finish`, outcome: 'error', durationMs, code, err },
      `${name} failed`,
    );
    throw err;
  }
}
