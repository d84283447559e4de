/**
 * Staged rollouts (docs/releases.md, "Canaries and waves"), pure. What changed in Central
 * since the last rollout ended goes to the canary cohort first; once enough canaries acked
 * it, to the other devices in waves, each opening RELEASE_WAVE_SECONDS after the one before
 * and reaching RELEASE_WAVE_PERCENT more of them (by a hash of the device id, so a device
 * is always in the same wave). Central serves only its current data, so a change made
 * during a rollout joins it.
 *
 * Whether a rollout has reached a device (reached), at time t:
 *
 * | rollout         | the device's cohort | canaries acked (at T) | → reached                                                  |
 * |-----------------|---------------------|-----------------------|------------------------------------------------------------|
 * | none, or ended  | –                   | –                     | yes                                                        |
 * | running         | canary              | –                     | yes                                                        |
 * | running         | other               | not yet               | no (held: wave)                                            |
 * | running         | other               | yes, at T             | when bucket < k × WAVE_PERCENT, k = 1 + ⌊(t − T) / WAVE_SECONDS⌋ |
 *
 * What the gate does with a running rollout's counts (rolloutStep), first match wins:
 *
 * | failures since the later of its start and the last resume | canaries acked            | waves open reach 100 % | → step        |
 * |------------------------------------------------------------|---------------------------|------------------------|---------------|
 * | ≥ RELEASE_ROLLOUT_MAX_FAILURES                             | –                         | –                      | `pause` (named cause) |
 * | –                                                          | not yet marked; ≥ min(RELEASE_CANARY_ACKS, canaries) | – | `canaries-ok` |
 * | –                                                          | marked                    | yes                    | `end`         |
 * | otherwise                                                  |                           |                        | `none`        |
 */
import { createHash } from 'node:crypto';

export interface Staging {
  /** 0: no staged rollout; every change goes to every device at once. */
  wavePercent: number;
  waveSeconds: number;
  canaryCohort: string;
  canaryAcks: number;
  maxFailures: number;
}

export interface Rollout {
  startedAt: Date | null;
  canariesOkAt: Date | null;
  endedAt: Date | null;
}

export const running = (r: Rollout): boolean => r.startedAt !== null && r.endedAt === null;

/** The device's place in the waves, 0–99: the first 4 bytes of the SHA-256 of its id. */
export function bucketOf(deviceId: string): number {
  return createHash('sha256').update(deviceId).digest().readUInt32BE(0) % 100;
}

/** The wave a device is in: 0 for a canary, else 1 + ⌊bucket / WAVE_PERCENT⌋. */
export function waveOf(s: Staging, cohort: string | null, deviceId: string): number {
  if (cohort === s.canaryCohort) return 0;
  return 1 + Math.floor(bucketOf(deviceId) / s.wavePercent);
}

export function wavesOpen(r: Rollout, s: Staging, now: number): number {
  if (!running(r)) return Infinity;
  if (!r.canariesOkAt) return 0;
  return 1 + Math.floor((now - r.canariesOkAt.getTime()) / (s.waveSeconds * 1000));
}

export const waveCount = (s: Staging): number => Math.ceil(100 / s.wavePercent);

export function reached(
  r: Rollout,
  s: Staging,
  cohort: string | null,
  deviceId: string,
  now: number,
): boolean {
  if (s.wavePercent <= 0) return true;
  return waveOf(s, cohort, deviceId) <= wavesOpen(r, s, now);
}

export interface RolloutCounts {
  /** Canaries that acked Success for an answer that changed their data, since the rollout began. */
  canariesAcked: number;
  /** Devices in the canary cohort. */
  canaries: number;
  /** Failed acks by code, and drift reports, since the later of the start and the last resume. */
  failures: readonly { code: string; devices: number }[];
}

export type RolloutStep = { kind: 'none' | 'canaries-ok' | 'end' } | { kind: 'pause'; reason: string };

export function rolloutStep(r: Rollout, s: Staging, c: RolloutCounts, now: number): RolloutStep {
  const failed = c.failures.reduce((n, f) => n + f.devices, 0);
  if (failed >= s.maxFailures) {
    const codes = c.failures.map((f) => `${f.code} ×${f.devices}`).join(', ');
    return {
      kind: 'pause',
      reason: `rollout of ${r.startedAt!.toISOString()}: ${failed} devices failed (${codes})`,
    };
  }
  if (!r.canariesOkAt)
    return c.canariesAcked >= Math.min(s.canaryAcks, c.canaries) ? { kind: 'canaries-ok' } : { kind: 'none' };
  return wavesOpen(r, s, now) >= waveCount(s) ? { kind: 'end' } : { kind: 'none' };
}
