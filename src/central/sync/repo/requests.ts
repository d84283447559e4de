/** The `sync_requests` audit trail. */
import { prepared, type Queryable } from '../../../platform/db.ts';
import { deviceFromRow, type Device, type DeviceRow } from '../../model.ts';
import { acceptedHashesSql } from './devices.ts';
import { scopeVersionSql } from './scope.ts';

export type RequestStatus =
  | 'started'
  | 'served'
  | 'unchanged'
  | 'held'
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

export interface PendingWipe {
  requestedAt: Date;
  secretHashes: readonly string[];
}

export interface StartedRequest {
  requestId: string;
  /** The device with this MAC, if any, with the credential hashes that verify now and its scope version. */
  found:
    | {
        device: Device;
        secretHashes: readonly string[];
        scopeVersion: string;
        /** Its cohort (device_cohorts): the canary cohort gets a rollout first; a cohort may have a window. */
        cohort: string | null;
        /** A wipe asked of the device, and the credential it held then (which proves it, even revoked). */
        wipe: PendingWipe | undefined;
      }
    | undefined;
}

/**
 * The audit rows first, for many requests at once (see platform/batcher.ts), and in the
 * same round trip everything the request needs to know
 * before any snapshot work: the device, its credential hash, its scope version (see
 * sync/repo/scope.ts scopeVersion). On this kind of machine a round trip to PostgreSQL
 * costs more CPU in the socket calls than the query itself; a fleet's unchanged answers
 * are mostly round trips.
 */
export async function startRequests(
  db: Queryable,
  inputs: readonly RequestOrigin[],
): Promise<StartedRequest[]> {
  // INSERT … RETURNING promises no order, so each request finds its row by what it wrote;
  // identical requests in one batch (a device asking twice at once) may swap rows, which are
  // identical too.
  const { rows } = await db.query<StartedRow>(
    prepared(
      'start-requests',
      `WITH v AS (
       SELECT v.*, row_number() OVER (PARTITION BY mac, remote_addr, schema_version, software_version ORDER BY ord) AS n
         FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[]) WITH ORDINALITY
                AS v(mac, remote_addr, schema_version, software_version, ord)),
     r AS (
       INSERT INTO sync_requests (mac, status, remote_addr, schema_version, software_version)
       SELECT mac, 'started', remote_addr, schema_version, software_version FROM v
       RETURNING id, mac, remote_addr, schema_version, software_version),
     rn AS (
       SELECT r.*, row_number() OVER (PARTITION BY mac, remote_addr, schema_version, software_version ORDER BY id) AS n
         FROM r)
     SELECT rn.id AS request_id, d.id, d.mac::text AS mac, d.location_id, l.company_id, d.is_enabled,
            ${acceptedHashesSql('c')} AS secret_hashes, ${scopeVersionSql('d.location_id', 'd.id')} AS scope_version,
            w.requested_at AS wipe_requested_at, CASE WHEN w.device_id IS NOT NULL THEN c.secret_hash END AS wipe_hash,
            dc.cohort
       FROM v
       JOIN rn ON rn.mac = v.mac AND rn.n = v.n AND rn.remote_addr IS NOT DISTINCT FROM v.remote_addr
              AND rn.schema_version IS NOT DISTINCT FROM v.schema_version
              AND rn.software_version IS NOT DISTINCT FROM v.software_version
       LEFT JOIN devices d ON d.mac = v.mac::macaddr
       LEFT JOIN locations l ON l.id = d.location_id
       LEFT JOIN device_credentials c ON c.device_id = d.id
       LEFT JOIN device_wipes w ON w.device_id = d.id
       LEFT JOIN device_cohorts dc ON dc.device_id = d.id
      ORDER BY v.ord`,
      [
        inputs.map((x) => x.mac),
        inputs.map((x) => x.remoteAddr),
        inputs.map((x) => x.schemaVersion ?? null),
        inputs.map((x) => x.softwareVersion ?? null),
      ],
    ),
  );
  return rows.map(startedFromRow);
}

type StartedRow = {
  request_id: string;
  secret_hashes: string[] | null;
  scope_version: string;
  wipe_requested_at: Date | null;
  wipe_hash: string | null;
  cohort: string | null;
} & Partial<DeviceRow>;

function startedFromRow(row: StartedRow): StartedRequest {
  return {
    requestId: row.request_id,
    found: row.id
      ? {
          device: deviceFromRow(row as DeviceRow),
          secretHashes: row.secret_hashes ?? [],
          scopeVersion: row.scope_version,
          cohort: row.cohort,
          wipe: row.wipe_requested_at
            ? { requestedAt: row.wipe_requested_at, secretHashes: row.wipe_hash ? [row.wipe_hash] : [] }
            : undefined,
        }
      : undefined,
  };
}

/** Finishes many requests' audit rows in one statement (see platform/batcher.ts). */
export async function finishRequests(
  db: Queryable,
  items: readonly { id: string; outcome: RequestOutcome }[],
): Promise<void> {
  const o = items.map((x) => x.outcome);
  await db.query(
    `UPDATE sync_requests r
        SET status = v.status, reason = v.reason, error_code = v.error_code, device_id = v.device_id,
            manifest_id = v.manifest_id, duration_ms = v.duration_ms, bytes_sent = v.bytes_sent,
            payload_sha256 = v.payload_sha256, completed_at = now()
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::integer[],
                   $8::bigint[], $9::text[])
              AS v(id, status, reason, error_code, device_id, manifest_id, duration_ms, bytes_sent, payload_sha256)
      WHERE r.id = v.id`,
    [
      items.map((x) => x.id),
      o.map((x) => x.status),
      o.map((x) => x.reason ?? null),
      o.map((x) => x.errorCode ?? null),
      o.map((x) => x.deviceId ?? null),
      o.map((x) => x.manifestId ?? null),
      o.map((x) => x.durationMs ?? null),
      o.map((x) => x.bytesSent ?? null),
      o.map((x) => x.payloadSha256 ?? null),
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
