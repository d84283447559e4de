/** `dbupdate central enroll`: a new secret for a device, shown once, stored hashed. */
import { withTransaction, type Pool } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { requireMac } from '../model.ts';
import { findDevicesByMac, upsertSecretHashes } from '../repo/devices.ts';
import { hashSecret, newSecret } from './credentials.ts';

export async function enrollDevice(
  pool: Pool,
  macText: string,
): Promise<{ deviceId: string; mac: string; secret: string }> {
  return (await enrollDevices(pool, [macText]))[0]!;
}

/**
 * A new secret for each of many devices, in one transaction: every MAC must name a device,
 * or nothing changes (the unknown ones are named).
 */
export async function enrollDevices(
  pool: Pool,
  macTexts: readonly string[],
): Promise<{ deviceId: string; mac: string; secret: string }[]> {
  const macs = macTexts.map(requireMac);
  return withTransaction(pool, 'BEGIN', async (tx) => {
    const byMac = new Map((await findDevicesByMac(tx, macs)).map((d) => [d.mac, d]));
    const unknown = macs.filter((m) => !byMac.has(m));
    if (unknown.length > 0) {
      const more = unknown.length > 5 ? ` and ${unknown.length - 5} more` : '';
      throw new AppError(
        'DEVICE_NOT_FOUND',
        `no device with MAC ${unknown.slice(0, 5).join(', ')}${more}; create it in central first`,
      );
    }
    const enrolled = macs.map((mac) => ({ deviceId: byMac.get(mac)!.id, mac, secret: newSecret() }));
    const hashes = await Promise.all(
      enrolled.map(async (e) => ({ deviceId: e.deviceId, secretHash: await hashSecret(e.secret) })),
    );
    await upsertSecretHashes(tx, hashes);
    return enrolled;
  });
}
