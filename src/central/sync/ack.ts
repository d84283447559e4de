/** Acknowledgements: validated, bound to the manifest's device, stored once. */
import type { AckBody, AckResponse } from '../../contract/wire.ts';
import { AppError, ERROR_CODES } from '../../platform/errors.ts';
import { requireMac } from '../model.ts';
import type { AuditStore } from './audit-store.ts';
import { spendDeviceBudget, type Limits } from './budgets.ts';
import { bearerToken } from '../../platform/http.ts';
import { checkCredential, type CredentialVerifier } from './credentials.ts';

export async function recordAck(
  audit: AuditStore,
  body: AckBody,
  authorization: string | undefined,
  requireCredential: boolean,
  verifier: CredentialVerifier,
  limits: Limits,
): Promise<AckResponse> {
  const mac = requireMac(body.mac);
  // A caller without any credential learns nothing, not even whether the manifest exists.
  if (requireCredential && !bearerToken(authorization)) {
    throw new AppError('UNAUTHENTICATED', 'missing Authorization: Bearer <device credential>');
  }
  const header = await audit.findManifestHeader(body.manifestId);
  if (!header) throw new AppError('MANIFEST_NOT_FOUND', `no manifest ${body.manifestId}`);
  if (requireCredential) await checkCredential(verifier, header.secretHashes, authorization);
  if (header.mac !== mac) {
    throw new AppError('MANIFEST_FORBIDDEN', `manifest ${body.manifestId} was not issued to ${mac}`);
  }
  await spendDeviceBudget(limits, header.deviceId, 'ack');
  return audit.insertAckOnce(body, mac);
}

/**
 * The error code an edge put in front of its ack's text (`HASH_MISMATCH: …`), for the
 * metric's label: one of ours, or OTHER, so a hostile text cannot mint label values.
 */
export function reportedCode(error: string | null): string {
  if (error === null) return '';
  const code = /^([A-Z][A-Z0-9_]{0,63}):/.exec(error)?.[1];
  return code !== undefined && code in ERROR_CODES ? code : 'OTHER';
}
