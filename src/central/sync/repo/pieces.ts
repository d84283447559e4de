/** What the pieces endpoint reads: a manifest with its device and tables, piece ranges, and its audit rows. */
import { to as copyTo } from 'pg-copy-streams';
import type { TableDigest } from '../../../contract/canonical.ts';
import { KEY_RANGE_SQL, keyRangeParams, keyRangeSql } from '../../../contract/pieces.ts';
import { columnList, type TableDef } from '../../../contract/tables.ts';
import { prepared, type PoolClient, type Queryable } from '../../../platform/db.ts';
import { deviceFromRow, type Device, type DeviceRow } from '../../model.ts';
import { acceptedHashesSql } from './devices.ts';
import { scopeSelectSql, scopeVersionSql } from './scope.ts';

export interface ManifestForPieces {
  mac: string;
  expiresAt: Date;
  schemaVersion: number;
  tables: TableDigest[];
  /** The device as it is now, with its scope version (undefined when it was deleted). */
  device: Device | undefined;
  scopeVersion: string;
  secretHashes: readonly string[];
}

/** The manifests of `ids` (one statement for a batch of piece fetches), in their order. */
export async function findManifestsForPieces(
  db: Queryable,
  ids: readonly string[],
): Promise<(ManifestForPieces | undefined)[]> {
  const { rows } = await db.query<
    Partial<DeviceRow> & {
      manifest_id: string;
      header_mac: string;
      expires_at: Date;
      schema_version: number;
      tables: TableDigest[];
      secret_hashes: string[] | null;
      scope_version: string;
    }
  >(
    prepared(
      'manifests-for-pieces',
      `SELECT h.manifest_id, h.mac::text AS header_mac, h.expires_at, h.schema_version,
            (SELECT json_agg(json_build_object('name', m.table_name, 'rowCount', m.row_count, 'sha256', m.sha256)
                             ORDER BY m.table_order)
               FROM sync_manifests m WHERE m.manifest_id = h.manifest_id) AS tables,
            d.id, d.mac::text AS mac, d.location_id, l.company_id, d.is_enabled,
            ${acceptedHashesSql('c')} AS secret_hashes,
            ${scopeVersionSql('d.location_id', 'd.id')} AS scope_version
       FROM sync_manifest_headers h
       LEFT JOIN devices d ON d.id = h.device_id
       LEFT JOIN locations l ON l.id = d.location_id
       LEFT JOIN device_credentials c ON c.device_id = h.device_id
      WHERE h.manifest_id = ANY($1::text[])`,
      [ids],
    ),
  );
  const byId = new Map(rows.map((row) => [row.manifest_id, row]));
  return ids.map((id) => {
    const row = byId.get(id);
    if (!row) return undefined;
    return {
      mac: row.header_mac,
      expiresAt: row.expires_at,
      schemaVersion: row.schema_version,
      tables: (row.tables ?? []).map((t) => ({ ...t, rowCount: Number(t.rowCount) })),
      device: row.id ? deviceFromRow(row as DeviceRow) : undefined,
      scopeVersion: row.scope_version,
      secretHashes: row.secret_hashes ?? [],
    };
  });
}

/**
 * COPY text of the scoped rows with keys in (after, last], in key order. The bounds travel
 * as settings, as the scope does (sync/repo/scope.ts): COPY takes no bind parameters.
 */
export async function copyPieceRange(
  client: PoolClient,
  def: TableDef,
  after: string | null,
  last: string,
): Promise<NodeJS.ReadableStream> {
  await client.query(KEY_RANGE_SQL, keyRangeParams(after, last));
  const scoped = scopeSelectSql(def);
  const where = scoped.indexOf(' WHERE ');
  const order = scoped.lastIndexOf(' ORDER BY ');
  const sql =
    `SELECT ${columnList(def)} FROM "${def.name}" WHERE ${scoped.slice(where + 7, order)}` +
    ` AND ${keyRangeSql(def, after)}${scoped.slice(order)}`;
  return client.query(copyTo(`COPY (${sql}) TO STDOUT`));
}

export type PieceFetchStatus = 'served' | 'refused' | 'error' | 'aborted';

export interface PieceFetchStart {
  manifestId: string;
  mac: string;
  requested: number;
}

export interface PieceFetchOutcome {
  status: PieceFetchStatus;
  errorCode: string | null;
  deviceId: string | null;
  sent: number;
  gone: number;
  bytes: number;
}

/** One audit row per fetch, `started`, for many fetches at once; their ids in input order. */
export async function startPieceFetches(
  db: Queryable,
  inputs: readonly PieceFetchStart[],
): Promise<string[]> {
  const { rows } = await db.query<{ id: string; manifest_id: string; mac: string; pieces_requested: number }>(
    prepared(
      'start-piece-fetches',
      `INSERT INTO sync_piece_fetches (manifest_id, mac, status, pieces_requested)
     SELECT manifest_id, mac, 'started', requested
       FROM unnest($1::text[], $2::text[], $3::int[]) AS v(manifest_id, mac, requested)
     RETURNING id, manifest_id, mac, pieces_requested`,
      [inputs.map((i) => i.manifestId), inputs.map((i) => i.mac), inputs.map((i) => i.requested)],
    ),
  );
  // RETURNING promises no order: each fetch takes a row by what it wrote (identical fetches
  // in one batch may swap rows, which are identical too).
  const key = (manifestId: string, mac: string, requested: number) => `${manifestId}|${mac}|${requested}`;
  const ids = new Map<string, string[]>();
  for (const r of rows) {
    const k = key(r.manifest_id, r.mac, r.pieces_requested);
    ids.set(k, [...(ids.get(k) ?? []), r.id]);
  }
  return inputs.map((i) => ids.get(key(i.manifestId, i.mac, i.requested))!.shift()!);
}

export async function finishPieceFetches(
  db: Queryable,
  items: readonly { id: string; outcome: PieceFetchOutcome }[],
): Promise<void> {
  const o = items.map((i) => i.outcome);
  await db.query(
    `UPDATE sync_piece_fetches f
        SET status = v.status, error_code = v.error_code, device_id = v.device_id, pieces_sent = v.sent,
            pieces_gone = v.gone, bytes_sent = v.bytes, completed_at = now()
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::uuid[], $5::int[], $6::int[], $7::bigint[])
            AS v(id, status, error_code, device_id, sent, gone, bytes)
      WHERE f.id = v.id`,
    [
      items.map((i) => i.id),
      o.map((x) => x.status),
      o.map((x) => x.errorCode),
      o.map((x) => x.deviceId),
      o.map((x) => x.sent),
      o.map((x) => x.gone),
      o.map((x) => x.bytes),
    ],
  );
}
