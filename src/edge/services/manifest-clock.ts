/**
 * How long a manifest may be used, judged by Central's clock rather than the device's: a
 * Jetson without a battery-backed clock boots with the wrong time until NTP answers, and
 * a device minutes ahead refused every manifest as expired, while one hours behind took an
 * on-path replay of an expired transfer as fresh.
 *
 * The edge sends a random nonce with each request, and Central signs it into the manifest
 * (`requestNonce`). A manifest carrying this request's nonce was made for it, so it is as old
 * as the request: its lifetime (expiresAt − generatedAt, both Central's clock) runs from its
 * arrival on the device's monotonic clock, whatever the wall clock says. A manifest with
 * another nonce answers another request (a replay) and is refused. A Central too old to
 * sign nonces leaves the edge with its own wall clock, as before.
 *
 * | requestNonce in the manifest | freshness judged by                                  |
 * |------------------------------|------------------------------------------------------|
 * | this request's               | arrival + lifetime, on the monotonic clock           |
 * | another                      | refused: MANIFEST_STALE (a replay)                   |
 * | none (an older Central)      | expiresAt against the device's wall clock            |
 */
import { randomBytes } from 'node:crypto';
import type { Manifest } from '../../contract/wire.ts';
import { AppError } from '../../platform/errors.ts';

/** Skew past this is named in refusals and logged: NTP keeps a healthy device within a second. */
const NOTABLE_SKEW_MS = 60_000;

export function newRequestNonce(): string {
  return randomBytes(16).toString('hex');
}

export class ManifestClock {
  readonly #m: Manifest;
  readonly #arrived: number;
  readonly #bound: boolean;
  /** How far this device's wall clock is ahead of Central's (negative: behind), give or take a round trip. */
  readonly skewMs: number;

  constructor(manifest: Manifest, nonce: string, now = Date.now(), monotonic = performance.now()) {
    this.#m = manifest;
    this.#arrived = monotonic;
    this.skewMs = now - Date.parse(manifest.generatedAt);
    this.#bound = manifest.requestNonce !== undefined;
    if (this.#bound && manifest.requestNonce !== nonce)
      throw new AppError(
        'MANIFEST_STALE',
        `manifest ${manifest.manifestId} answers another request, not this one (a replay recorded on the path); nothing is loaded`,
      );
  }

  /** Milliseconds the manifest may still be used (0 or less: expired). */
  leftMs(now = Date.now(), monotonic = performance.now()): number {
    if (!this.#bound) return Date.parse(this.#m.expiresAt) - now;
    const lifetime = Date.parse(this.#m.expiresAt) - Date.parse(this.#m.generatedAt);
    return lifetime - (monotonic - this.#arrived);
  }

  /** Throws MANIFEST_EXPIRED once the manifest's lifetime is over; `when` says at which step. */
  check(when: string): void {
    if (this.leftMs() > 0) return;
    const skew = this.skewNote();
    throw new AppError(
      'MANIFEST_EXPIRED',
      `manifest ${this.#m.manifestId} expired ${when} (it was valid until ${this.#m.expiresAt}, Central's clock)` +
        (skew ? `; ${skew}` : ''),
    );
  }

  /** A sentence about this device's clock when it is off by more than a minute, else undefined. */
  skewNote(): string | undefined {
    if (Math.abs(this.skewMs) < NOTABLE_SKEW_MS) return undefined;
    const minutes = Math.round(Math.abs(this.skewMs) / 60_000);
    return (
      `this device's clock is ${minutes} min ${this.skewMs > 0 ? 'ahead of' : 'behind'} Central's: ` +
      'check its NTP (timedatectl status)'
    );
  }
}
