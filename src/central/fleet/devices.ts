/**
 * Device lifecycle operations of the CLI and the admin API: each changes one device in one
 * transaction together with the event that says who did it and when.
 */
import { withTransaction, type Pool } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { requireMac } from '../model.ts';
import {
  clearWipe,
  insertAdminEvents,
  requestWipe,
  revokeCredential,
  setCohort,
  setDeviceEnabled,
} from './repo/device-admin.ts';
import { COHORT } from './enroll.ts';
import { findDeviceByMac } from '../sync/repo/devices.ts';

export type DeviceAction = 'disable' | 'enable' | 'revoke';

export interface DeviceChange {
  mac: string;
  deviceId: string;
  action: DeviceAction;
  /** false when the device already was in that state (the event is recorded all the same). */
  changed: boolean;
  /** disable or revoke: the device empties its tables at its next request (a signed wipe). */
  wipe?: boolean;
}

/**
 * disable/enable: a disabled device is refused (403, audited) and gets no data; its
 * credential stays. revoke: the credential stops verifying on every Central at the next
 * request, since each reads it afresh; the device stays, and `enroll` gives it a new one.
 * With `wipe` (disable, revoke) the device's next request, proved with the credential it
 * holds, is answered with a signed wipe (docs/releases.md); enable takes a wipe away.
 */
export async function changeDevice(
  pool: Pool,
  macText: string,
  action: DeviceAction,
  actor: string,
  wipe = false,
): Promise<DeviceChange> {
  if (wipe && action === 'enable')
    throw new AppError('USAGE', 'wipe goes with disable or revoke: enable gives the device its data back');
  const mac = requireMac(macText);
  return withTransaction(pool, 'BEGIN', async (tx) => {
    let deviceId: string;
    let changed: boolean;
    if (action === 'revoke') {
      const device = await findDeviceByMac(tx, mac);
      if (!device) throw new AppError('DEVICE_NOT_FOUND', `no device with MAC ${mac}`);
      deviceId = device.id;
      changed = await revokeCredential(tx, device.id);
    } else {
      const result = await setDeviceEnabled(tx, mac, action === 'enable');
      if (!result) throw new AppError('DEVICE_NOT_FOUND', `no device with MAC ${mac}`);
      ({ id: deviceId, changed } = result);
    }
    if (wipe) await requestWipe(tx, deviceId, actor);
    // Only enable takes a wipe back (a new credential does not: the wipe then proves with it).
    const wipeCleared = action === 'enable' && (await clearWipe(tx, deviceId));
    const details = { changed, ...(wipe ? { wipe } : {}), ...(wipeCleared ? { wipeCleared } : {}) };
    await insertAdminEvents(tx, [{ actor, action, mac, deviceId, details }]);
    return { mac, deviceId, action, changed, ...(wipe ? { wipe } : {}) };
  });
}

/** Puts a device in a cohort, or in none (`null`), recorded with who did it. */
export async function setDeviceCohort(
  pool: Pool,
  macText: string,
  cohort: string | null,
  actor: string,
): Promise<{ mac: string; deviceId: string; cohort: string | null; changed: boolean }> {
  const mac = requireMac(macText);
  if (cohort !== null && !COHORT.test(cohort))
    throw new AppError(
      'INVALID_INPUT',
      `cohort ${JSON.stringify(cohort)} is not a name of a-z, 0-9, _ and - (at most 63)`,
    );
  return withTransaction(pool, 'BEGIN', async (tx) => {
    const device = await findDeviceByMac(tx, mac);
    if (!device) throw new AppError('DEVICE_NOT_FOUND', `no device with MAC ${mac}`);
    const changed = await setCohort(tx, device.id, cohort, actor);
    await insertAdminEvents(tx, [
      { actor, action: 'cohort', mac, deviceId: device.id, details: { cohort, changed } },
    ]);
    return { mac, deviceId: device.id, cohort, changed };
  });
}
