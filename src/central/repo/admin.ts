/** Read-only queries for the admin API (and, later, the dashboards). */
import type { Queryable } from '../../platform/db.ts';

export async function requestCountsByStatus(db: Queryable, hours: number): Promise<Record<string, number>> {
  const { rows } = await db.query<{ status: string; n: number }>(
    `SELECT status, count(*)::int AS n FROM sync_requests
      WHERE requested_at >= now() - make_interval(hours => $1::int) GROUP BY status ORDER BY status`,
    [hours],
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

export interface DeviceActivity {
  requests: {
    requested_at: Date;
    status: string;
    manifest_id: string | null;
    error_code: string | null;
    duration_ms: number | null;
  }[];
  acks: {
    manifest_id: string;
    completed_at: Date;
    result: string;
    duration_ms: number;
    error_text: string | null;
  }[];
}

export async function deviceActivity(db: Queryable, mac: string, limit: number): Promise<DeviceActivity> {
  const requests = await db.query<DeviceActivity['requests'][number]>(
    `SELECT requested_at, status, manifest_id, error_code, duration_ms FROM sync_requests
      WHERE mac = $1::text ORDER BY requested_at DESC LIMIT $2::int`,
    [mac, limit],
  );
  const acks = await db.query<DeviceActivity['acks'][number]>(
    `SELECT manifest_id, completed_at, result, duration_ms, error_text FROM sync_acknowledgements
      WHERE mac = $1::macaddr ORDER BY completed_at DESC LIMIT $2::int`,
    [mac, limit],
  );
  return { requests: requests.rows, acks: acks.rows };
}
