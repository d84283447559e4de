/**
 * Central's request budgets. Only the per-source budget is spent before a request proves
 * who it is; the per-device and overall budgets are spent after authentication, so no
 * caller can exhaust a device's budget (naming its MAC) or the fleet's (with junk).
 * The per-source budget is each Central's own (it guards that process); the per-device
 * and overall ones are shared through Redis when RATE_LIMIT_REDIS_URL is set, so they
 * hold across Central replicas (shared-limits.ts), and counted in process otherwise.
 */
import { AppError } from '../../platform/errors.ts';
import { KeyedWindows } from '../../platform/fixed-window.ts';

/** A budget per key: 0 when a request may go ahead, else the seconds until its window resets. */
export interface Budget {
  take(key: string): Promise<number>;
}

export interface Limits {
  perSource: KeyedWindows;
  perDevice: Budget;
  overall: Budget;
}

export interface PerMinute {
  source: number;
  device: number;
  overall: number;
}

/** The in-process budget of KeyedWindows, behind the Budget interface. */
export function localBudget(limit: number, windowMs = 60_000): Budget {
  const windows = new KeyedWindows(limit, windowMs);
  return { take: async (key) => windows.take(key) };
}

export function createLimits(perMinute: PerMinute, shared?: (name: string, limit: number) => Budget): Limits {
  const budget = shared ?? ((_name: string, limit: number) => localBudget(limit));
  return {
    perSource: new KeyedWindows(perMinute.source, 60_000),
    perDevice: budget('device', perMinute.device),
    overall: budget('overall', perMinute.overall),
  };
}

/** Retry-After with jitter, so that the refused do not all come back in the same second. */
function refused(waitSeconds: number, message: string): AppError {
  const retryAfterSeconds = waitSeconds + Math.floor(Math.random() * Math.max(1, waitSeconds / 2));
  return new AppError('RATE_LIMITED', message, { details: { retryAfterSeconds } });
}

/** Before anything else: the caller's address may send so much, whoever it claims to be. */
export function spendSourceBudget(limits: Limits, source: string): void {
  const wait = limits.perSource.take(source);
  if (wait > 0) throw refused(wait, 'too many requests from this address; retry later');
}

/** After authentication: the device's own budget for this route, then the fleet's. */
export async function spendDeviceBudget(
  limits: Limits,
  deviceId: string,
  route: 'request' | 'pieces' | 'ack',
): Promise<void> {
  const own = await limits.perDevice.take(`${route}:${deviceId}`);
  if (own > 0) throw refused(own, 'too many requests a minute from this device');
  const overall = await limits.overall.take('');
  if (overall > 0) throw refused(overall, 'Central is at its overall request rate; retry later');
}
