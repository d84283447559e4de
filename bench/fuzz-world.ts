/**
 * The identities the fuzz speaks as (bench/fuzz-cases.ts, FuzzWorld): from devices already in
 * Central, one enrolled, one never enrolled, one disabled, one revoked, and one MAC paired with
 * another device's credential; real manifests to ask pieces of; the admin token. Devices named
 * in `spare` (the edge's own) are left alone.
 */
import type { Pool } from '../src/platform/db.ts';
import { changeDevice } from '../src/central/fleet/devices.ts';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import type { FuzzWorld } from './fuzz-cases.ts';

export async function prepareFuzzWorld(
  pool: Pool,
  centralUrl: string,
  adminToken: string,
  spare: readonly string[],
): Promise<FuzzWorld> {
  const { rows } = await pool.query<{ mac: string; location_id: string }>(
    `SELECT mac::text AS mac, location_id FROM devices WHERE NOT (mac::text = ANY($1::text[])) ORDER BY mac LIMIT 4`,
    [spare],
  );
  if (rows.length < 4) throw new Error('the fuzz world needs four devices besides the edge');
  const [enrolled, disabled, revoked, other] = await Promise.all(rows.map((r) => enrollDevice(pool, r.mac)));
  await changeDevice(pool, disabled!.mac, 'disable', 'fuzz');
  await changeDevice(pool, revoked!.mac, 'revoke', 'fuzz');
  const never = '02:fe:00:00:00:01';
  await pool.query(
    `INSERT INTO devices (id, location_id, mac, name, is_enabled, created_at, updated_at)
     VALUES (gen_random_uuid(), $1, $2, 'never enrolled', true, now(), now()) ON CONFLICT DO NOTHING`,
    [rows[0]!.location_id, never],
  );
  const manifestIds: string[] = [];
  for (const device of [enrolled!, other!]) {
    const res = await fetch(`${centralUrl}/api/device-sync/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${device.secret}` },
      body: JSON.stringify({ mac: device.mac, pieces: true }),
    });
    await res.arrayBuffer();
    const id = res.headers.get('x-manifest-id');
    if (res.status !== 200 || !id) throw new Error(`no manifest for the fuzz world (${res.status})`);
    manifestIds.push(id);
  }
  return {
    identities: [
      { label: 'enrolled', mac: enrolled!.mac, token: enrolled!.secret },
      { label: 'never enrolled', mac: never, token: 'dbu1_never-enrolled-device-000' },
      { label: 'disabled', mac: disabled!.mac, token: disabled!.secret },
      { label: 'revoked', mac: revoked!.mac, token: revoked!.secret },
      { label: "another's", mac: enrolled!.mac, token: other!.secret },
      { label: 'other', mac: other!.mac, token: other!.secret },
    ],
    manifestIds,
    adminToken,
    locationId: rows[0]!.location_id,
  };
}
