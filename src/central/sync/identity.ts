/**
 * Who is asking, proved one way on every device-sync route. A request names a device by
 * its MAC; a piece fetch and an ack also name a manifest, which must be that device's.
 * Checked in this order, the first failure answered:
 *
 * | # | check (route)                                                 | fails with          |
 * |---|---------------------------------------------------------------|---------------------|
 * | 1 | (pieces, ack) a credential was sent at all                    | UNAUTHENTICATED     |
 * | 2 | (pieces, ack) the manifest exists                             | MANIFEST_NOT_FOUND  |
 * | 3 | (pieces, ack) it was issued to the MAC the caller claims: the | MANIFEST_FORBIDDEN  |
 * |   | caller proves that MAC's credential first, else               | UNAUTHENTICATED     |
 * | 4 | (request) a device has the MAC                                | DEVICE_NOT_FOUND    |
 * | – | (request) a wipe is asked of it, and the caller proves the    | answered: the wipe  |
 * |   | credential the device held then (even revoked, even disabled) | (provesWipe)        |
 * | 5 | (request, pieces) the device is enabled                       | DEVICE_DISABLED     |
 * | 6 | the credential is one of the device's                         | UNAUTHENTICATED     |
 *
 * A caller without any credential learns nothing of a manifest, not even whether it exists;
 * forbidden is said only to a device that proved who it is. An ack is taken from a disabled
 * device: it reports what already happened, and the audit keeps it. In the lab-only MAC-only
 * mode (`requireCredential` false) the credential checks are skipped.
 */
import { AppError } from '../../platform/errors.ts';
import { bearerToken } from '../../platform/http.ts';
import type { Pool } from '../../platform/db.ts';
import { checkCredential, type CredentialVerifier } from './credentials.ts';
import { acceptedHashesOfMac } from './repo/devices.ts';

export interface IdentityDeps {
  pool: Pool;
  credentials: CredentialVerifier;
  requireCredential: boolean;
}

/** A device as read with the request, and the hashes its credential verifies against. */
export interface Claimed<D extends { id: string; enabled?: boolean }> {
  device: D | undefined;
  secretHashes: readonly string[];
}

/** Rows 4–6, for a request naming a device by its MAC (`found` undefined: no such device). */
export async function proveDevice<D extends { id: string; enabled?: boolean }>(
  deps: IdentityDeps,
  mac: string,
  found: Claimed<D> | undefined,
  authorization: string | undefined,
  requireEnabled = true,
): Promise<D> {
  const device = found?.device;
  if (!device) throw new AppError('DEVICE_NOT_FOUND', `no device with MAC ${mac}`);
  if (requireEnabled && device.enabled !== true)
    throw new AppError('DEVICE_DISABLED', `device ${mac} is disabled`);
  if (deps.requireCredential) await checkCredential(deps.credentials, found.secretHashes, authorization);
  return device;
}

/**
 * A device asked to wipe its data (migration 0014) gets the wipe, whatever else is refused it
 * (disabled, credential revoked), once it proves the credential it held when it was asked:
 * a wipe tells nothing, and a device that cannot be told keeps data it must not hold.
 */
export async function provesWipe(
  deps: IdentityDeps,
  secretHashes: readonly string[],
  authorization: string | undefined,
): Promise<boolean> {
  if (!deps.requireCredential) return true;
  return checkCredential(deps.credentials, secretHashes, authorization).then(
    () => true,
    () => false,
  );
}

/** Rows 1–6, for a call naming a manifest (`manifest` undefined: none with that id). */
export async function proveManifestOwner<
  D extends { id: string; enabled?: boolean },
  M extends Claimed<D> & { mac: string },
>(
  deps: IdentityDeps,
  mac: string,
  manifestId: string,
  /** Read only once a credential was sent (row 1): a caller without one costs no query. */
  lookup: () => Promise<M | undefined>,
  authorization: string | undefined,
  requireEnabled: boolean,
): Promise<{ manifest: M; device: D }> {
  if (deps.requireCredential && !bearerToken(authorization))
    throw new AppError('UNAUTHENTICATED', 'missing Authorization: Bearer <device credential>');
  const manifest = await lookup();
  if (!manifest) throw new AppError('MANIFEST_NOT_FOUND', `no manifest ${manifestId}`);
  if (manifest.mac !== mac) {
    if (deps.requireCredential)
      await checkCredential(deps.credentials, await acceptedHashesOfMac(deps.pool, mac), authorization);
    throw new AppError('MANIFEST_FORBIDDEN', `manifest ${manifestId} was not issued to ${mac}`);
  }
  return { manifest, device: await proveDevice(deps, mac, manifest, authorization, requireEnabled) };
}
