/** Acknowledgements: validated, bound to the manifest's device, stored once. */
import type { AckBody, AckResponse } from '../../contract/wire.ts';
import { ERROR_CODES } from '../../platform/errors.ts';
import { requireMac } from '../model.ts';
import type { AuditStore } from './audit-store.ts';
import { spendDeviceBudget, type Limits } from './budgets.ts';
import { proveManifestOwner, type IdentityDeps } from './identity.ts';

export async function recordAck(
  deps: IdentityDeps & { audit: AuditStore; limits: Limits },
  body: AckBody,
  authorization: string | undefined,
): Promise<AckResponse> {
  const mac = requireMac(body.mac);
  const { manifest } = await proveManifestOwner(
    deps,
    mac,
    body.manifestId,
    // An ack is taken from a disabled device (identity.ts).
    async () => {
      const header = await deps.audit.findManifestHeader(body.manifestId);
      return header && { ...header, device: { id: header.deviceId } };
    },
    authorization,
    false,
  );
  await spendDeviceBudget(deps.limits, manifest.deviceId, 'ack');
  return deps.audit.insertAckOnce(body, mac);
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
