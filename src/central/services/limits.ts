/**
 * Central's request budgets. Only the per-source budget is spent before a request proves
 * who it is; the per-device and overall budgets are spent after authentication, so no
 * caller can exhaust a device's budget (naming its MAC) or the fleet's (with junk).
 */
import { AppError } from '../../platform/errors.ts';
import { FixedWindow, KeyedWindows } from '../../platform/fixed-window.ts';

export interface Limits {
  perSource: KeyedWindows;
  perDevice: KeyedWindows;
  overall: FixedWindow;
}

export function createLimits(perMinute: { source: number; device: number; overall: number }): Limits {
  return {
    perSource: new KeyedWindows(perMinute.source, 60_000),
    perDevice: new KeyedWindows(perMinute.device, 60_000),
    overall: new FixedWindow(perMinute.overall, 60_000),
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
export function spendDeviceBudget(limits: Limits, deviceId: string, route: 'request' | 'ack'): void {
  const own = limits.perDevice.take(`${route}:${deviceId}`);
  if (own > 0) throw refused(own, 'too many requests a minute from this device');
  const overall = limits.overall.take();
  if (overall > 0) throw refused(overall, 'Central is at its overall request rate; retry later');
}
