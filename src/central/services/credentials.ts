/**
 * Device credentials: a random secret shown once, stored as a salted scrypt hash
 * (node:crypto, no extra dependency). Verification runs off the event loop.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Queryable } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { getSecretHash } from '../repo/devices.ts';
import { promisify } from 'node:util';

const scryptAsync = promisify(scrypt) as (
  password: string,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

const PARAMS = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEY_LENGTH = 32;

export function newSecret(): string {
  return `dbu1_${randomBytes(32).toString('base64url')}`;
}

export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(secret, salt, KEY_LENGTH, PARAMS);
  return `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifySecret(secret: string, stored: string): Promise<boolean> {
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

/** The credential from `Authorization: Bearer <credential>`, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  // The scheme is case-insensitive (RFC 9110 §11.1).
  const match = /^Bearer +([A-Za-z0-9._~+/=-]{1,512})$/i.exec(header ?? '');
  return match?.[1];
}

/**
 * scrypt is slow on purpose (tens of milliseconds of CPU), which a fleet polling every
 * few minutes would pay on every request. A credential that verified is remembered for
 * a while, keyed by a hash of the credential and the stored hash together: rotating a
 * credential (a new stored hash) ends its entry at once, and the memory holds neither
 * the credential nor anything it could be recovered from. Failures are never cached.
 */
export class CredentialVerifier {
  readonly #verified: LRUCache<string, true>;

  constructor(options: { maxEntries: number; ttlMs: number }) {
    this.#verified = new LRUCache({ max: options.maxEntries, ttl: options.ttlMs });
  }

  async verify(secret: string, stored: string): Promise<boolean> {
    const key = createHash('sha256').update(stored).update('\0').update(secret).digest('base64');
    if (this.#verified.get(key)) return true;
    const ok = await verifySecret(secret, stored);
    if (ok) this.#verified.set(key, true);
    return ok;
  }
}

/** Throws UNAUTHENTICATED unless `authorization` carries the device's current credential. */
export async function authenticateDevice(
  db: Queryable,
  verifier: CredentialVerifier,
  deviceId: string,
  authorization: string | undefined,
): Promise<void> {
  const token = bearerToken(authorization);
  if (!token) throw new AppError('UNAUTHENTICATED', 'missing Authorization: Bearer <device credential>');
  const stored = await getSecretHash(db, deviceId);
  if (!stored || !(await verifier.verify(token, stored))) {
    throw new AppError('UNAUTHENTICATED', 'device credential not accepted');
  }
}
