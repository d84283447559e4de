import type { Queryable } from '../../platform/db.ts';
import { deviceFromRow, type Device, type DeviceRow } from '../model.ts';

export async function findDeviceByMac(db: Queryable, mac: string): Promise<Device | undefined> {
  return (await findDevicesByMac(db, [mac]))[0];
}

/** Devices by MAC, in one query; a MAC with no device is missing from the result. */
export async function findDevicesByMac(db: Queryable, macs: readonly string[]): Promise<Device[]> {
  const { rows } = await db.query<DeviceRow>(
    `SELECT d.id, d.mac::text AS mac, d.location_id, l.company_id, d.is_enabled
       FROM devices d JOIN locations l ON l.id = d.location_id
      WHERE d.mac = ANY($1::macaddr[])`,
    [macs],
  );
  return rows.map(deviceFromRow);
}

/** Many credentials in one statement (the caller owns the transaction, so all or none land). */
export async function upsertSecretHashes(
  db: Queryable,
  rows: readonly { deviceId: string; secretHash: string }[],
): Promise<void> {
  await db.query(
    `INSERT INTO device_credentials (device_id, secret_hash)
     SELECT * FROM unnest($1::uuid[], $2::text[])
     ON CONFLICT (device_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, rotated_at = now()`,
    [rows.map((r) => r.deviceId), rows.map((r) => r.secretHash)],
  );
}
