/** `dbupdate central enroll`: a new secret for a device, shown once, stored hashed. */
import type { Pool } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { requireMac } from '../model.ts';
import { findDeviceByMac, upsertSecretHash } from '../repo/devices.ts';
import { hashSecret, newSecret } from './credentials.ts';

export async function enrollDevice(
  pool: Pool,
  macText: string,
): Promise<{ deviceId: string; mac: string; secret: string }> {
  const mac = requireMac(macText);
  const device = await findDeviceByMac(pool, mac);
  if (!device)
    throw new AppError('DEVICE_NOT_FOUND', `no device with MAC ${mac}; create it in central first`);
  const secret = newSecret();
  await upsertSecretHash(pool, device.id, await hashSecret(secret));
  return { deviceId: device.id, mac, secret };
}
