/** The `sync_requests` audit trail. */
import type { Queryable } from '../../platform/db.ts';

export type RequestStatus =
  | 'started'
  | 'served'
  | 'unchanged'
  | 'invalid_input'
  | 'unauthenticated'
  | 'unknown_device'
  | 'disabled'
  | 'error'
  | 'aborted'
  | 'rate_limited'
  | 'overloaded';

export interface RequestOutcome {
  status: Exclude<RequestStatus, 'started'>;
  reason?: string | null;
  errorCode?: string | null;
  deviceId?: string | null;
  manifestId?: string | null;
  durationMs?: number | null;
  bytesSent?: number | null;
  payloadSha256?: string | null;
}

export async function insertRequestStarted(
  db: Queryable,
  input: { mac: string; remoteAddr: string | null },
): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO sync_requests (mac, status, remote_addr) VALUES ($1::text, 'started', $2::text) RETURNING id`,
    [input.mac, input.remoteAddr],
  );
  return rows[0]!.id;
}

export async function finishRequest(db: Queryable, id: string, outcome: RequestOutcome): Promise<void> {
  await db.query(
    `UPDATE sync_requests
        SET status = $2::text, reason = $3::text, error_code = $4::text, device_id = $5::uuid,
            manifest_id = $6::text, duration_ms = $7::integer, bytes_sent = $8::bigint,
            payload_sha256 = $9::text, completed_at = now()
      WHERE id = $1::bigint`,
    [
      id,
      outcome.status,
      outcome.reason ?? null,
      outcome.errorCode ?? null,
      outcome.deviceId ?? null,
      outcome.manifestId ?? null,
      outcome.durationMs ?? null,
      outcome.bytesSent ?? null,
      outcome.payloadSha256 ?? null,
    ],
  );
}

/** For requests refused before any work started (bad body, wrong content type, too large). */
export async function insertRequestRefused(
  db: Queryable,
  input: { mac: string; remoteAddr: string | null } & RequestOutcome,
): Promise<void> {
  await db.query(
    `INSERT INTO sync_requests (mac, status, reason, error_code, remote_addr, duration_ms, completed_at)
     VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::integer, now())`,
    [
      input.mac,
      input.status,
      input.reason ?? null,
      input.errorCode ?? null,
      input.remoteAddr,
      input.durationMs ?? null,
    ],
  );
}

/**
 * Rows still 'started' after `olderThanSeconds`: their Central died mid-request (no live
 * request runs that long). Closed as aborted, so the audit says what became of them.
 */
export async function closeAbandonedRequests(db: Queryable, olderThanSeconds: number): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE sync_requests
        SET status = 'aborted', completed_at = now(),
            reason = 'Central stopped before it finished this request (closed by the sweeper)'
      WHERE status = 'started' AND requested_at < now() - make_interval(secs => $1::integer)`,
    [olderThanSeconds],
  );
  return rowCount ?? 0;
}
