/** Read-only queries for the admin API and the dashboard; each is served by an index. */
import type { Queryable } from '../../../platform/db.ts';

export async function requestCountsByStatus(db: Queryable, hours: number): Promise<Record<string, number>> {
  const { rows } = await db.query<{ status: string; n: number }>(
    `SELECT status, count(*)::int AS n FROM sync_requests
      WHERE requested_at >= now() - make_interval(hours => $1::int) GROUP BY status ORDER BY status`,
    [hours],
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

export interface HourlyCountRow {
  hour: Date;
  kind: 'request' | 'ack';
  outcome: string;
  n: number;
}

/** Requests by status and acknowledgements by result, per hour, over the last `hours` hours. */
export async function hourlyCounts(db: Queryable, hours: number): Promise<HourlyCountRow[]> {
  const { rows } = await db.query<HourlyCountRow>(
    // Hours are cut in UTC whatever the session's TimeZone, so they match the wire's UTC hours.
    `WITH since AS (SELECT date_trunc('hour', now(), 'UTC') - make_interval(hours => $1::int - 1) AS t)
     SELECT date_trunc('hour', requested_at, 'UTC') AS hour, 'request' AS kind, status AS outcome, count(*)::int AS n
       FROM sync_requests, since WHERE requested_at >= since.t GROUP BY 1, 3
     UNION ALL
     SELECT date_trunc('hour', completed_at, 'UTC'), 'ack', result, count(*)::int
       FROM sync_acknowledgements, since WHERE completed_at >= since.t GROUP BY 1, 3
     ORDER BY 1, 2, 3`,
    [hours],
  );
  return rows;
}

export interface FailureCountRow {
  code: string;
  source: 'request' | 'device';
  failures: number;
  devices: number;
}

/**
 * Failures of the last `hours` by error code: requests Central refused or failed, and the
 * failures devices reported about themselves (TLS, CA, signature, load: what never reached a
 * manifest), each with how many devices it touched.
 */
export async function failuresByCode(db: Queryable, hours: number): Promise<FailureCountRow[]> {
  const { rows } = await db.query<FailureCountRow>(
    `SELECT error_code AS code, 'request' AS source, count(*)::int AS failures, count(DISTINCT mac)::int AS devices
       FROM sync_requests
      WHERE requested_at >= now() - make_interval(hours => $1::int) AND error_code IS NOT NULL
      GROUP BY 1
     UNION ALL
     SELECT failure_code, 'device', count(*)::int, count(DISTINCT mac)::int
       FROM device_reports
      WHERE failure_at >= now() - make_interval(hours => $1::int) AND failure_code IS NOT NULL
      GROUP BY 1
     ORDER BY 3 DESC, 1 LIMIT 50`,
    [hours],
  );
  return rows;
}

export interface RowDeltaRow {
  manifest_id: string;
  generated_at: Date;
  table_name: string;
  row_count: string;
  delta: string | null;
  /** The content differs from the previous manifest's (null for the first). */
  changed: boolean | null;
}

/**
 * Row counts per table of a device's last `limit` manifests, with the change from the one before:
 * in count, and in content (a rename changes the content, not the count).
 */
export async function rowDeltas(db: Queryable, mac: string, limit: number): Promise<RowDeltaRow[]> {
  const { rows } = await db.query<RowDeltaRow>(
    `WITH recent AS (
       SELECT manifest_id, generated_at FROM sync_manifest_headers
        WHERE mac = $1::macaddr ORDER BY generated_at DESC LIMIT $2::int + 1)
     SELECT manifest_id, generated_at, table_name, row_count, delta, changed FROM (
       SELECT r.manifest_id, r.generated_at, m.table_name, m.table_order, m.row_count,
              m.row_count - lag(m.row_count) OVER (PARTITION BY m.table_name ORDER BY r.generated_at) AS delta,
              m.sha256 IS DISTINCT FROM lag(m.sha256) OVER (PARTITION BY m.table_name ORDER BY r.generated_at)
                AND lag(m.sha256) OVER (PARTITION BY m.table_name ORDER BY r.generated_at) IS NOT NULL AS changed,
              dense_rank() OVER (ORDER BY r.generated_at DESC, r.manifest_id) AS age
         FROM recent r JOIN sync_manifests m ON m.manifest_id = r.manifest_id) x
      WHERE age <= $2::int
      ORDER BY generated_at, table_order`,
    [mac, limit],
  );
  return rows;
}

export interface DeviceActivity {
  requests: {
    requested_at: Date;
    status: string;
    manifest_id: string | null;
    error_code: string | null;
    duration_ms: number | null;
    bytes_sent: string | null;
    reason: string | null;
  }[];
  acks: {
    manifest_id: string;
    completed_at: Date;
    result: string;
    duration_ms: number;
    error_text: string | null;
  }[];
  manifests: {
    manifest_id: string;
    generated_at: Date;
    global_sha256: string;
    rows: string;
  }[];
  errors: {
    requested_at: Date;
    status: string;
    error_code: string | null;
    reason: string | null;
  }[];
}

export async function deviceActivity(db: Queryable, mac: string, limit: number): Promise<DeviceActivity> {
  const requests = await db.query<DeviceActivity['requests'][number]>(
    `SELECT requested_at, status, manifest_id, error_code, duration_ms, bytes_sent, reason FROM sync_requests
      WHERE mac = $1::text ORDER BY requested_at DESC LIMIT $2::int`,
    [mac, limit],
  );
  const acks = await db.query<DeviceActivity['acks'][number]>(
    `SELECT manifest_id, completed_at, result, duration_ms, error_text FROM sync_acknowledgements
      WHERE mac = $1::macaddr ORDER BY completed_at DESC LIMIT $2::int`,
    [mac, limit],
  );
  const manifests = await db.query<DeviceActivity['manifests'][number]>(
    `SELECT h.manifest_id, h.generated_at, h.global_sha256,
            (SELECT sum(m.row_count) FROM sync_manifests m WHERE m.manifest_id = h.manifest_id)::text AS rows
       FROM sync_manifest_headers h WHERE h.mac = $1::macaddr ORDER BY h.generated_at DESC LIMIT $2::int`,
    [mac, limit],
  );
  const errors = await db.query<DeviceActivity['errors'][number]>(
    `SELECT requested_at, status, error_code, reason FROM sync_requests
      WHERE mac = $1::text AND error_code IS NOT NULL ORDER BY requested_at DESC LIMIT $2::int`,
    [mac, limit],
  );
  return { requests: requests.rows, acks: acks.rows, manifests: manifests.rows, errors: errors.rows };
}
