/**
 * The salted scrypt form enrolments used before the SHA-256 one (src/central/sync/credentials.ts
 * still verifies it): made here only, for the tests that a device enrolled then still works.
 */
import { randomBytes, scryptSync } from 'node:crypto';

const PARAMS = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

export async function hashSecretScrypt(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const key = scryptSync(secret, salt, 32, PARAMS);
  return `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}
