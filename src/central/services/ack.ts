/** Acknowledgements: validated, bound to the manifest's device, stored once. */
import { normalizeMac } from '../../contract/mac.ts';
import type { AckBody, AckResponse } from '../../contract/wire.ts';
import type { Pool } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { getSecretHash } from '../repo/devices.ts';
import { findManifestHeader, insertAckOnce } from '../repo/manifests.ts';
import { bearerToken, type CredentialVerifier } from './credentials.ts';

export async function recordAck(
  pool: Pool,
  body: AckBody,
  authorization: string | undefined,
  requireCredential: boolean,
  verifier: CredentialVerifier,
): Promise<AckResponse> {
  const mac = normalizeMac(body.mac);
  if (!mac) throw new AppError('INVALID_MAC', `not a MAC address: ${JSON.stringify(body.mac.slice(0, 64))}`);
  const token = bearerToken(authorization);
  if (requireCredential && !token) {
    throw new AppError('UNAUTHENTICATED', 'missing Authorization: Bearer <device credential>');
  }
  const header = await findManifestHeader(pool, body.manifestId);
  if (!header) throw new AppError('MANIFEST_NOT_FOUND', `no manifest ${body.manifestId}`);
  if (requireCredential) {
    const stored = await getSecretHash(pool, header.deviceId);
    if (!stored || !(await verifier.verify(token!, stored))) {
      throw new AppError('UNAUTHENTICATED', 'device credential not accepted');
    }
  }
  if (header.mac !== mac) {
    throw new AppError('MANIFEST_FORBIDDEN', `manifest ${body.manifestId} was not issued to ${mac}`);
  }
  return insertAckOnce(pool, body, mac);
}
