/** Device lifecycle: the fleet list, enabling, revoking, creating devices, and who did what. */
import type { Queryable } from '../../../platform/db.ts';

export type CredentialState = 'none' | 'active' | 'rotating' | 'revoked';

export interface DeviceListRow {
  id: string;
  mac: string;
  name: string;
  location_id: string;
  location: string;
  company: string;
  is_enabled: boolean;
  credential_state: CredentialState;
  last_request_at: Date | null;
  last_request_status: string | null;
  last_success_at: Date | null;
  schema_version: number | null;
  software_version: string | null;
  last_error_at: Date | null;
  last_error: string | null;
  /** The device's own report (migration 0012): its last failure and its last drift check. */
  reported_failure_at: Date | null;
  reported_failure: string | null;
  drift_tables: string[] | null;
  drift_checked_at: Date | null;
  cohort: string | null;
  /** Why its last request was held (release control), when it was. */
  last_request_reason: string | null;
  /** A wipe asked of it: acked done, or not yet (migration 0014). */
  wipe_state: 'wiped' | 'wipe pending' | null;
}

export interface DeviceListQuery {
  /** Only enabled devices without a successful ack in this many hours. */
  staleHours?: number;
  /** Keyset paging: devices whose MAC sorts after this one. */
  afterMac?: string;
  limit: number;
}

// The lateral look-ups are each one probe of an index (0002, 0006, 0009): a page of 500
// devices costs 2,000 probes whatever the size of the audit trail.
const DEVICE_FACTS = `
  FROM devices d
  JOIN locations l ON l.id = d.location_id
  JOIN companies co ON co.id = l.company_id
  LEFT JOIN device_credentials c ON c.device_id = d.id
  LEFT JOIN LATERAL (SELECT s.completed_at FROM sync_acknowledgements s
                      WHERE s.mac = d.mac AND s.result = 'Success'
                      ORDER BY s.completed_at DESC LIMIT 1) a ON true`;

// The list names devices that never synced too (their state says so); the stale gauge does not
// count them (fleetCounts), so enrolling ahead of shipping fires no alert.
const STALE = `($1::int IS NULL OR (d.is_enabled AND (a.completed_at IS NULL
                 OR a.completed_at < now() - make_interval(hours => $1::int))))`;

export async function listDevices(
  db: Queryable,
  q: DeviceListQuery,
): Promise<{ rows: DeviceListRow[]; total: number }> {
  const { rows } = await db.query<DeviceListRow>(
    `SELECT d.id, d.mac::text AS mac, d.name, d.location_id, l.name AS location, co.name AS company,
            d.is_enabled,
            CASE WHEN c.device_id IS NULL THEN 'none' WHEN c.revoked_at IS NOT NULL THEN 'revoked'
                 WHEN c.previous_valid_until > now() THEN 'rotating' ELSE 'active' END AS credential_state,
            r.requested_at AS last_request_at, r.status AS last_request_status,
            a.completed_at AS last_success_at, r.schema_version, r.software_version,
            e.at AS last_error_at, e.text AS last_error,
            rep.failure_at AS reported_failure_at, rep.failure_code || ': ' || rep.failure_message AS reported_failure,
            rep.drift_tables, rep.drift_checked_at, dc.cohort, r.reason AS last_request_reason,
            CASE WHEN w.device_id IS NULL THEN NULL
                 -- A scalar lookup by the primary key (an EXISTS may be planned as a hashed scan).
                 WHEN (SELECT wa.result FROM sync_acknowledgements wa WHERE wa.manifest_id = w.last_manifest_id) = 'Success'
                 THEN 'wiped' ELSE 'wipe pending' END AS wipe_state
       ${DEVICE_FACTS}
       LEFT JOIN device_reports rep ON rep.device_id = d.id
       LEFT JOIN device_cohorts dc ON dc.device_id = d.id
       LEFT JOIN device_wipes w ON w.device_id = d.id
       LEFT JOIN LATERAL (SELECT q.requested_at, q.status, q.reason, q.schema_version, q.software_version
                            FROM sync_requests q WHERE q.mac = d.mac::text
                           ORDER BY q.requested_at DESC LIMIT 1) r ON true
       LEFT JOIN LATERAL (
         SELECT * FROM (
           (SELECT q.requested_at AS at, q.error_code || coalesce(': ' || q.reason, '') AS text
              FROM sync_requests q WHERE q.mac = d.mac::text AND q.error_code IS NOT NULL
             ORDER BY q.requested_at DESC LIMIT 1)
           UNION ALL
           (SELECT s.completed_at, 'ACK_FAILED' || coalesce(': ' || s.error_text, '')
              FROM sync_acknowledgements s WHERE s.mac = d.mac AND s.result = 'Failed'
             ORDER BY s.completed_at DESC LIMIT 1)) x
         ORDER BY at DESC LIMIT 1) e ON true
      WHERE ${STALE} AND ($2::macaddr IS NULL OR d.mac > $2::macaddr)
      ORDER BY d.mac LIMIT $3::int`,
    [q.staleHours ?? null, q.afterMac ?? null, q.limit],
  );
  return { rows, total: await countDevices(db, q.staleHours) };
}

/** How many devices the list holds in all (stale ones only, with `staleHours`). */
export async function countDevices(db: Queryable, staleHours?: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n ${DEVICE_FACTS} WHERE ${STALE}`, [
    staleHours ?? null,
  ]);
  return rows[0]?.n ?? 0;
}

/** Sets is_enabled; returns the device id, or undefined when no device has this MAC. */
export async function setDeviceEnabled(
  db: Queryable,
  mac: string,
  enabled: boolean,
): Promise<{ id: string; changed: boolean } | undefined> {
  const { rows } = await db.query<{ id: string; changed: boolean }>(
    `WITH old AS (SELECT id, is_enabled FROM devices WHERE mac = $1::macaddr FOR UPDATE)
     UPDATE devices d SET is_enabled = $2::boolean,
            updated_at = CASE WHEN old.is_enabled = $2::boolean THEN d.updated_at ELSE now() END
       FROM old WHERE d.id = old.id
     RETURNING d.id, old.is_enabled <> $2::boolean AS changed`,
    [mac, enabled],
  );
  return rows[0];
}

/** Puts the device in a cohort (null: none); false when it already was. */
export async function setCohort(
  db: Queryable,
  deviceId: string,
  cohort: string | null,
  actor: string,
): Promise<boolean> {
  if (cohort === null) {
    const { rowCount } = await db.query('DELETE FROM device_cohorts WHERE device_id = $1::uuid', [deviceId]);
    return (rowCount ?? 0) > 0;
  }
  const { rowCount } = await db.query(
    `INSERT INTO device_cohorts (device_id, cohort, set_by) VALUES ($1::uuid, $2::text, $3::text)
     ON CONFLICT (device_id) DO UPDATE SET cohort = EXCLUDED.cohort, set_at = now(), set_by = EXCLUDED.set_by
      WHERE device_cohorts.cohort <> EXCLUDED.cohort`,
    [deviceId, cohort, actor],
  );
  return (rowCount ?? 0) > 0;
}

/** Asks the device to empty its tables at its next request (migration 0014); the first ask stands. */
export async function requestWipe(db: Queryable, deviceId: string, actor: string): Promise<void> {
  await db.query(
    `INSERT INTO device_wipes (device_id, requested_by) VALUES ($1::uuid, $2::text)
     ON CONFLICT (device_id) DO NOTHING`,
    [deviceId, actor],
  );
}

export async function clearWipe(db: Queryable, deviceId: string): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM device_wipes WHERE device_id = $1::uuid', [deviceId]);
  return (rowCount ?? 0) > 0;
}

/** The credential verifies nothing from now on, on every Central (each reads it per request). */
export async function revokeCredential(db: Queryable, deviceId: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE device_credentials
        SET revoked_at = now(), previous_secret_hash = NULL, previous_valid_until = NULL
      WHERE device_id = $1::uuid AND revoked_at IS NULL`,
    [deviceId],
  );
  return (rowCount ?? 0) > 0;
}

export interface NewDevice {
  id: string;
  mac: string;
  name: string;
  locationId: string;
}

/** Creates devices that do not exist yet; returns the MACs it created. */
export async function insertDevices(db: Queryable, devices: readonly NewDevice[]): Promise<string[]> {
  const { rows } = await db.query<{ mac: string }>(
    `INSERT INTO devices (id, location_id, mac, name, is_enabled, created_at, updated_at)
     SELECT id, location_id, mac, name, true, now(), now()
       FROM unnest($1::uuid[], $2::uuid[], $3::macaddr[], $4::text[]) AS n(id, location_id, mac, name)
     ON CONFLICT (mac) DO NOTHING
     RETURNING mac::text AS mac`,
    [
      devices.map((d) => d.id),
      devices.map((d) => d.locationId),
      devices.map((d) => d.mac),
      devices.map((d) => d.name),
    ],
  );
  return rows.map((r) => r.mac);
}

/** Which of these location ids exist. */
export async function existingLocations(db: Queryable, ids: readonly string[]): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>(`SELECT id FROM locations WHERE id = ANY($1::uuid[])`, [
    ids,
  ]);
  return new Set(rows.map((r) => r.id));
}

export interface AdminEvent {
  actor: string;
  action: 'create' | 'enroll' | 'disable' | 'enable' | 'revoke' | 'cohort';
  mac: string;
  deviceId: string | null;
  details?: Record<string, unknown>;
}

export async function insertAdminEvents(db: Queryable, events: readonly AdminEvent[]): Promise<void> {
  if (events.length === 0) return;
  await db.query(
    `INSERT INTO device_admin_events (actor, action, mac, device_id, details)
     SELECT * FROM unnest($1::text[], $2::text[], $3::macaddr[], $4::uuid[], $5::jsonb[])`,
    [
      events.map((e) => e.actor),
      events.map((e) => e.action),
      events.map((e) => e.mac),
      events.map((e) => e.deviceId),
      events.map((e) => JSON.stringify(e.details ?? {})),
    ],
  );
}

export interface AdminEventRow {
  at: Date;
  actor: string;
  action: string;
  details: Record<string, unknown>;
}

export async function adminEventsOf(db: Queryable, mac: string, limit: number): Promise<AdminEventRow[]> {
  const { rows } = await db.query<AdminEventRow>(
    `SELECT at, actor, action, details FROM device_admin_events
      WHERE mac = $1::macaddr ORDER BY at DESC, id DESC LIMIT $2::int`,
    [mac, limit],
  );
  return rows;
}

/** Hours after which a device without a successful ack counts as stale in the metrics. */
export const STALE_BUCKETS_HOURS = [1, 6, 24] as const;

export interface FleetCounts {
  enabled: number;
  disabled: number;
  /** Enabled devices that never acknowledged a sync (enrolled ahead of shipping, or failing from the start). */
  neverSynced: number;
  /** Enabled devices whose last verify reported drifted tables. */
  drifted: number;
  /** Enabled devices without a successful ack in that many hours, by STALE_BUCKETS_HOURS. */
  stale: Record<(typeof STALE_BUCKETS_HOURS)[number], number>;
}

/** One pass over the devices, one index probe each (the metrics scrape, cached by the caller). */
export async function fleetCounts(db: Queryable): Promise<FleetCounts> {
  const { rows } = await db.query<{
    enabled: number;
    disabled: number;
    never: number;
    drifted: number;
    s1: number;
    s6: number;
    s24: number;
  }>(
    `SELECT count(*) FILTER (WHERE d.is_enabled)::int AS enabled,
            count(*) FILTER (WHERE NOT d.is_enabled)::int AS disabled,
            count(*) FILTER (WHERE d.is_enabled AND a.completed_at IS NULL)::int AS never,
            count(*) FILTER (WHERE d.is_enabled AND cardinality(rep.drift_tables) > 0)::int AS drifted,
            count(*) FILTER (WHERE d.is_enabled AND a.completed_at < now() - interval '1 hour')::int AS s1,
            count(*) FILTER (WHERE d.is_enabled AND a.completed_at < now() - interval '6 hours')::int AS s6,
            count(*) FILTER (WHERE d.is_enabled AND a.completed_at < now() - interval '24 hours')::int AS s24
       FROM devices d
       LEFT JOIN device_reports rep ON rep.device_id = d.id
       LEFT JOIN LATERAL (SELECT s.completed_at FROM sync_acknowledgements s
                           WHERE s.mac = d.mac AND s.result = 'Success'
                           ORDER BY s.completed_at DESC LIMIT 1) a ON true`,
  );
  const r = rows[0] ?? { enabled: 0, disabled: 0, never: 0, drifted: 0, s1: 0, s6: 0, s24: 0 };
  return {
    enabled: r.enabled,
    disabled: r.disabled,
    neverSynced: r.never,
    drifted: r.drifted,
    stale: { 1: r.s1, 6: r.s6, 24: r.s24 },
  };
}

export interface VersionCountRow {
  schema_version: number | null;
  software_version: string | null;
  devices: number;
  refused: number;
}

/** Enabled devices by the versions their latest request reported; `refused`: it was refused for them. */
export async function devicesByVersion(db: Queryable): Promise<VersionCountRow[]> {
  const { rows } = await db.query<VersionCountRow>(
    `SELECT r.schema_version, r.software_version, count(*)::int AS devices,
            count(*) FILTER (WHERE r.status = 'unsupported_schema')::int AS refused
       FROM devices d
       LEFT JOIN LATERAL (SELECT q.status, q.schema_version, q.software_version
                            FROM sync_requests q WHERE q.mac = d.mac::text
                           ORDER BY q.requested_at DESC LIMIT 1) r ON true
      WHERE d.is_enabled
      GROUP BY 1, 2
      ORDER BY 1 NULLS FIRST, 2 NULLS FIRST`,
  );
  return rows;
}
