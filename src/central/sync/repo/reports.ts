/** Devices' own reports (migration 0012): upserted many at a time, by the audit batches. */
import type { Queryable } from '../../../platform/db.ts';

export interface DeviceReportRow {
  deviceId: string;
  mac: string;
  failure: { code: string; message: string; at: string } | null;
  drift: { tables: string[]; checkedAt: string } | null;
}

/**
 * One statement for a batch; a device reported twice in it keeps its last report. A report
 * without a failure (or without a drift check) keeps the one stored: each is the last one known.
 */
export async function upsertReports(db: Queryable, reports: readonly DeviceReportRow[]): Promise<void> {
  const last = [...new Map(reports.map((r) => [r.deviceId, r])).values()];
  await db.query(
    `INSERT INTO device_reports AS r (device_id, mac, failure_code, failure_message, failure_at,
                                      drift_tables, drift_checked_at)
     SELECT d, m, fc, fm, fa, CASE WHEN dc IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(dt)) END, dc
       FROM unnest($1::uuid[], $2::macaddr[], $3::text[], $4::text[], $5::timestamptz[], $6::jsonb[],
                   $7::timestamptz[]) AS x(d, m, fc, fm, fa, dt, dc)
     ON CONFLICT (device_id) DO UPDATE
        SET mac = EXCLUDED.mac, reported_at = now(),
            failure_code = coalesce(EXCLUDED.failure_code, r.failure_code),
            failure_message = CASE WHEN EXCLUDED.failure_code IS NULL THEN r.failure_message ELSE EXCLUDED.failure_message END,
            failure_at = coalesce(EXCLUDED.failure_at, r.failure_at),
            drift_tables = coalesce(EXCLUDED.drift_tables, r.drift_tables),
            drift_checked_at = coalesce(EXCLUDED.drift_checked_at, r.drift_checked_at)`,
    [
      last.map((r) => r.deviceId),
      last.map((r) => r.mac),
      last.map((r) => r.failure?.code ?? null),
      last.map((r) => r.failure?.message ?? null),
      last.map((r) => r.failure?.at ?? null),
      last.map((r) => JSON.stringify(r.drift?.tables ?? [])),
      last.map((r) => r.drift?.checkedAt ?? null),
    ],
  );
}
