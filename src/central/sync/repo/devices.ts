import type { Queryable } from '../../../platform/db.ts';
import { deviceFromRow, type Device, type DeviceRow } from '../../model.ts';

/**
 * The stored hashes that verify a device's credential now, as one SQL expression over a
 * `device_credentials` alias: none once revoked, the previous one too while a rotation's
 * overlap lasts; none for a device never enrolled (no credential row). Every request reads it afresh, so a revocation holds at once on every
 * Central, and the verifier's cache (keyed by the stored hash) cannot outlive it.
 */
export const acceptedHashesSql = (c: string) =>
  `CASE WHEN ${c}.revoked_at IS NOT NULL OR ${c}.secret_hash IS NULL THEN NULL
        WHEN ${c}.previous_valid_until > now() THEN ARRAY[${c}.secret_hash, ${c}.previous_secret_hash]
        ELSE ARRAY[${c}.secret_hash] END`;

/** The hashes that verify the credential of the device with `mac` now (none: no such device, or none works). */
export async function acceptedHashesOfMac(db: Queryable, mac: string): Promise<string[]> {
  const { rows } = await db.query<{ hashes: string[] | null }>(
    `SELECT ${acceptedHashesSql('c')} AS hashes
       FROM devices d JOIN device_credentials c ON c.device_id = d.id WHERE d.mac = $1::macaddr`,
    [mac],
  );
  return rows[0]?.hashes ?? [];
}

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

/** Of these devices, the ones whose credential works now (re-keying them cuts a live device off). */
export async function devicesWithActiveCredential(
  db: Queryable,
  deviceIds: readonly string[],
): Promise<Set<string>> {
  const { rows } = await db.query<{ device_id: string }>(
    `SELECT device_id FROM device_credentials WHERE device_id = ANY($1::uuid[]) AND revoked_at IS NULL`,
    [deviceIds],
  );
  return new Set(rows.map((r) => r.device_id));
}

/**
 * Many credentials in one statement (the caller owns the transaction, so all or none land).
 * With `overlapSeconds` > 0 a device's working credential keeps verifying that long beside
 * the new one; a revoked one never does.
 */
export async function upsertSecretHashes(
  db: Queryable,
  rows: readonly { deviceId: string; secretHash: string }[],
  overlapSeconds = 0,
): Promise<void> {
  await db.query(
    `INSERT INTO device_credentials (device_id, secret_hash)
     SELECT * FROM unnest($1::uuid[], $2::text[])
     ON CONFLICT (device_id) DO UPDATE SET
       secret_hash = EXCLUDED.secret_hash, rotated_at = now(), revoked_at = NULL,
       previous_secret_hash = CASE WHEN $3::int > 0 AND device_credentials.revoked_at IS NULL
                                   THEN device_credentials.secret_hash END,
       previous_valid_until = CASE WHEN $3::int > 0 AND device_credentials.revoked_at IS NULL
                                   THEN now() + make_interval(secs => $3::int) END`,
    [rows.map((r) => r.deviceId), rows.map((r) => r.secretHash), overlapSeconds],
  );
}
