/**
 * Device credentials: a random secret of 256 bits shown once, stored as its SHA-256.
 * A slow password hash protects guessable secrets; these cannot be guessed (2^256), so a
 * stolen table of hashes gives nothing away, while scrypt's ~50 ms of CPU per check was
 * the largest cost of a fleet's requests (100,000 devices re-verifying every 15 minutes
 * is 110 checks a second, more than two cores can do). Hashes enrolled before, in the
 * salted scrypt form, are still verified (off the event loop, bounded) until re-enrolled.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { BulkheadRejectedError, bulkhead } from 'cockatiel';
import type { LRUCache } from 'lru-cache';
import { growingLru } from '../../platform/lru.ts';
import { AppError } from '../../platform/errors.ts';
import { bearerToken } from '../../platform/http.ts';
import { promisify } from 'node:util';

const scryptAsync = promisify(scrypt) as (
  password: string,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

const PARAMS = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

export function newSecret(): string {
  return `dbu1_${randomBytes(32).toString('base64url')}`;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest();

export async function hashSecret(secret: string): Promise<string> {
  return `sha256$${sha256(secret).toString('base64url')}`;
}

/** Whether `stored` is the fast form, checked in place rather than on the thread pool. */
const isSha256 = (stored: string) => stored.startsWith('sha256$');

function verifySha256(secret: string, stored: string): boolean {
  const expected = Buffer.from(stored.slice('sha256$'.length), 'base64url');
  return expected.length === 32 && timingSafeEqual(sha256(secret), expected);
}

export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  if (isSha256(stored)) return verifySha256(secret, stored);
  const [scheme, n, r, p, salt, key] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || !salt || !key) return false;
  const expected = Buffer.from(key, 'base64url');
  const actual = await scryptAsync(secret, Buffer.from(salt, 'base64url'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: PARAMS.maxmem,
  });
  return timingSafeEqual(actual, expected);
}

/**
 * A legacy scrypt check is slow on purpose (tens of milliseconds of CPU), which a fleet
 * polling every few minutes would pay on every request. A credential that verified is remembered for
 * a while, keyed by a hash of the credential and the stored hash together: rotating a
 * credential (a new stored hash) ends its entry at once, and the memory holds neither
 * the credential nor anything it could be recovered from. A refused pair is remembered
 * too: it can never become right (a new credential means a new stored hash, a new key),
 * and a client repeating a wrong one then costs nothing.
 *
 * scrypt runs on libuv's small thread pool, which zlib and zstd share: a flood of wrong
 * credentials must not take all of it, or every snapshot's compression waits behind them.
 * So at most `concurrency` checks run at once, `queue` more wait, and the rest are shed.
 */
export class CredentialVerifier {
  readonly #verified: LRUCache<string, true>;
  readonly #refused: LRUCache<string, true>;
  readonly #checks;
  readonly #counted: (source: 'cache' | 'computed') => void;

  constructor(options: {
    maxEntries: number;
    ttlMs: number;
    concurrency?: number;
    queue?: number;
    /** Told where each answer came from (for the metric). */
    onCheck?: (source: 'cache' | 'computed') => void;
  }) {
    this.#counted = options.onCheck ?? (() => undefined);
    this.#verified = growingLru(options.maxEntries, options.ttlMs);
    this.#refused = growingLru(options.maxEntries, options.ttlMs);
    this.#checks = bulkhead(options.concurrency ?? 2, options.queue ?? 64);
  }

  async verify(secret: string, stored: string): Promise<boolean> {
    const key = createHash('sha256').update(stored).update('\0').update(secret).digest('base64');
    const known = this.#verified.get(key) ? true : this.#refused.get(key) ? false : undefined;
    if (known !== undefined) {
      this.#counted('cache');
      return known;
    }
    let ok: boolean;
    try {
      ok = isSha256(stored)
        ? verifySha256(secret, stored)
        : await this.#checks.execute(() => verifySecret(secret, stored));
    } catch (err) {
      if (!(err instanceof BulkheadRejectedError)) throw err;
      throw new AppError('OVERLOADED', 'too many credential checks at once; retry later', {
        details: { retryAfterSeconds: 2 + Math.floor(Math.random() * 8) },
      });
    }
    this.#counted('computed');
    (ok ? this.#verified : this.#refused).set(key, true);
    return ok;
  }
}

/**
 * Throws UNAUTHENTICATED unless `authorization` carries a credential matching one of the
 * hashes the caller read with the device (none: never enrolled, or revoked).
 */
export async function checkCredential(
  verifier: CredentialVerifier,
  accepted: readonly string[],
  authorization: string | undefined,
): Promise<void> {
  const token = bearerToken(authorization);
  if (!token) throw new AppError('UNAUTHENTICATED', 'missing Authorization: Bearer <device credential>');
  // A hash that is not there (never enrolled) verifies nothing, as a wrong one does.
  for (const stored of accepted)
    if (typeof stored === 'string' && (await verifier.verify(token, stored))) return;
  throw new AppError('UNAUTHENTICATED', 'device credential not accepted');
}
