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
 * another nonce answers another request (a replay) and is refused. So is one without a nonce:
 * a Central too old to sign nonces refuses the nonce in the request (400) before it answers,
 * so such a manifest can only be a replay from before this edge's upgrade (upgrade Central first).
 *
 * | requestNonce in the manifest | freshness judged by                                       |
 * |------------------------------|-----------------------------------------------------------|
 * | this request's               | the request's start + lifetime, on the monotonic clock    |
 * | another, or none             | refused: MANIFEST_STALE (a replay)                        |
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
  readonly #asked: number;
  /** How far this device's wall clock is ahead of Central's (negative: behind), give or take a round trip. */
  readonly skewMs: number;

  /** `asked`: the monotonic time the request was sent (the lifetime runs from there, not from arrival). */
  constructor(manifest: Manifest, nonce: string, asked: number, now = Date.now()) {
    this.#m = manifest;
    this.#asked = asked;
    this.skewMs = now - Date.parse(manifest.generatedAt);
    if (manifest.requestNonce === undefined)
      throw new AppError(
        'MANIFEST_STALE',
        `manifest ${manifest.manifestId} carries no requestNonce: a replay from before this edge's upgrade, or a Central older than this edge (upgrade Central first); nothing is loaded`,
      );
    if (manifest.requestNonce !== nonce)
      throw new AppError(
        'MANIFEST_STALE',
        `manifest ${manifest.manifestId} answers another request, not this one (a replay recorded on the path); nothing is loaded`,
      );
  }

  /** Milliseconds the manifest may still be used (0 or less: expired). */
  leftMs(monotonic = performance.now()): number {
    const lifetime = Date.parse(this.#m.expiresAt) - Date.parse(this.#m.generatedAt);
    return lifetime - (monotonic - this.#asked);
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
