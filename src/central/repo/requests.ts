/** The `sync_requests` audit trail. */
import type { Queryable } from '../../platform/db.ts';
import { deviceFromRow, type Device, type DeviceRow } from '../model.ts';
import { acceptedHashesSql } from './devices.ts';
import { scopeVersionSql } from './snapshot.ts';

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
  | 'overloaded'
  | 'unsupported_schema';

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

/** Who asked: the MAC as sent, the peer, and what the edge said it runs (absent from old edges). */
export interface RequestOrigin {
  mac: string;
  remoteAddr: string | null;
  schemaVersion?: number | null;
  softwareVersion?: string | null;
}

export interface StartedRequest {
  requestId: string;
  /** The device with this MAC, if any, with the credential hashes that verify now and its scope version. */
  found: { device: Device; secretHashes: readonly string[]; scopeVersion: string } | undefined;
}

/**
 * The audit row first, and in the same round trip everything the request needs to know
 * before any snapshot work: the device, its credential hash, its scope version (see
 * repo/snapshot.ts scopeVersion). On this kind of machine a round trip to PostgreSQL
 * costs more CPU in the socket calls than the query itself; a fleet's unchanged answers
 * are mostly round trips.
 */
export async function startRequest(db: Queryable, input: RequestOrigin): Promise<StartedRequest> {
  const { rows } = await db.query<
    { request_id: string; secret_hashes: string[] | null; scope_version: string } & Partial<DeviceRow>
  >(
    `WITH r AS (
       INSERT INTO sync_requests (mac, status, remote_addr, schema_version, software_version)
       VALUES ($1::text, 'started', $2::text, $3::integer, $4::text) RETURNING id)
     SELECT r.id AS request_id, d.id, d.mac::text AS mac, d.location_id, l.company_id, d.is_enabled,
            ${acceptedHashesSql('c')} AS secret_hashes, ${scopeVersionSql('d.location_id', 'd.id')} AS scope_version
       FROM r
       LEFT JOIN devices d ON d.mac = $1::macaddr
       LEFT JOIN locations l ON l.id = d.location_id
       LEFT JOIN device_credentials c ON c.device_id = d.id`,
    [input.mac, input.remoteAddr, input.schemaVersion ?? null, input.softwareVersion ?? null],
  );
  const row = rows[0]!;
  const found = row.id
    ? {
        device: deviceFromRow(row as DeviceRow),
        secretHashes: row.secret_hashes ?? [],
        scopeVersion: row.scope_version,
      }
    : undefined;
  return { requestId: row.request_id, found };
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
  input: RequestOrigin & RequestOutcome,
): Promise<void> {
  await db.query(
    `INSERT INTO sync_requests (mac, status, reason, error_code, remote_addr, duration_ms,
                                schema_version, software_version, completed_at)
     VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::integer, $7::integer, $8::text, now())`,
    [
      input.mac,
      input.status,
      input.reason ?? null,
      input.errorCode ?? null,
      input.remoteAddr,
      input.durationMs ?? null,
      input.schemaVersion ?? null,
      input.softwareVersion ?? null,
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
