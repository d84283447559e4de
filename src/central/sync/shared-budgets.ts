/**
 * Budgets kept in Redis, so every Central replica spends from the same ones: one fixed
 * window per key, counted by a Lua script (INCR, expiry set by the first request of the
 * window) in one round trip. If Redis does not answer within its short timeout, the
 * request is counted in this process instead (logged and counted): a Redis outage must
 * not refuse the fleet, and each Central still holds its own share of the limit. The client
 * library is loaded only when Redis is configured: it costs about 70 ms of start, and an idle
 * Central is 11 MB smaller without it and the tracing SDK (docs/scaling.md, "Memory").
 */
import type { Logger } from '../../platform/logger.ts';
import type { CentralMetrics } from '../metrics.ts';
import { localBudget, type Budget } from './budgets.ts';

/** KEYS[1] the window's key; ARGV window ms, limit. Returns 0, or the ms until the window resets. */
const TAKE = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n > tonumber(ARGV[2]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
  return ttl
end
return 0`;

type TakeCommand = (key: string, windowMs: number, limit: number) => Promise<number>;

export interface SharedLimits {
  budget(name: string, limit: number): Budget;
  close(): Promise<void>;
}

export async function redisLimits(
  url: string,
  metrics: CentralMetrics,
  log: Logger,
  windowMs = 60_000,
): Promise<SharedLimits> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(url, {
    // Fail fast rather than queue: a request waits for Redis at most this long.
    commandTimeout: 500,
    connectTimeout: 2_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    lazyConnect: false,
  });
  redis.on('error', () => {}); // reported per failed take, below
  redis.defineCommand('dbupdateTake', { numberOfKeys: 1, lua: TAKE });
  const take = (redis as unknown as { dbupdateTake: TakeCommand }).dbupdateTake.bind(redis);
  let lastWarned = 0;
  return {
    budget(name, limit) {
      const fallback = localBudget(limit, windowMs);
      return {
        async take(key) {
          try {
            const waitMs = await take(`dbupdate:budget:${name}:${key}`, windowMs, limit);
            return waitMs > 0 ? Math.max(1, Math.ceil(waitMs / 1000)) : 0;
          } catch (err) {
            metrics.rateLimitStoreErrors.inc();
            if (Date.now() - lastWarned > 60_000) {
              lastWarned = Date.now();
              log.warn(
                { event: 'rate_limit.redis', err },
                'Redis did not answer; budgets counted in this process',
              );
            }
            return fallback.take(key);
          }
        },
      };
    },
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
