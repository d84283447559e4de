/** What the pieces endpoint reads: a manifest with its device and tables, piece ranges, and its audit rows. */
import { to as copyTo } from 'pg-copy-streams';
import type { TableDigest } from '../../contract/canonical.ts';
import { columnList, orderBy, type TableDef } from '../../contract/tables.ts';
import type { PoolClient, Queryable } from '../../platform/db.ts';
import { deviceFromRow, type Device, type DeviceRow } from '../model.ts';
import { acceptedHashesSql } from './devices.ts';
import { scopeSelectSql, scopeVersionSql } from './snapshot.ts';

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

export async function findManifestForPieces(
  db: Queryable,
  manifestId: string,
): Promise<ManifestForPieces | undefined> {
  const { rows } = await db.query<
    Partial<DeviceRow> & {
      header_mac: string;
      expires_at: Date;
      schema_version: number;
      tables: TableDigest[];
      secret_hashes: string[] | null;
      scope_version: string;
    }
  >(
    `SELECT h.mac::text AS header_mac, h.expires_at, h.schema_version,
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
      WHERE h.manifest_id = $1::text`,
    [manifestId],
  );
  const row = rows[0];
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
}

/** The key columns against a tab-joined key held in a transaction-local setting. */
function keyBound(def: TableDef, op: '>' | '<=', setting: string): string {
  const parts = def.primaryKey.map(
    (_, i) => `split_part(current_setting('dbupdate.${setting}'), E'\\t', ${i + 1})::uuid`,
  );
  return `(${orderBy(def)}) ${op} (${parts.join(', ')})`;
}

/**
 * COPY text of the scoped rows with keys in (after, last], in key order. The bounds travel
 * as settings, as the scope does (repo/snapshot.ts): COPY takes no bind parameters.
 */
export async function copyPieceRange(
  client: PoolClient,
  def: TableDef,
  after: string | null,
  last: string,
): Promise<NodeJS.ReadableStream> {
  await client.query(
    `SELECT set_config('dbupdate.after', $1::text, true), set_config('dbupdate.last', $2::text, true)`,
    [after ?? '', last],
  );
  const scoped = scopeSelectSql(def);
  const where = scoped.indexOf(' WHERE ');
  const order = scoped.lastIndexOf(' ORDER BY ');
  const bounds = [after === null ? undefined : keyBound(def, '>', 'after'), keyBound(def, '<=', 'last')];
  const sql =
    `SELECT ${columnList(def)} FROM "${def.name}" WHERE ${scoped.slice(where + 7, order)}` +
    ` AND ${bounds.filter(Boolean).join(' AND ')}${scoped.slice(order)}`;
  return client.query(copyTo(`COPY (${sql}) TO STDOUT`));
}

export type PieceFetchStatus = 'served' | 'refused' | 'error' | 'aborted';

export async function startPieceFetch(
  db: Queryable,
  input: { manifestId: string; mac: string; requested: number },
): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO sync_piece_fetches (manifest_id, mac, status, pieces_requested)
     VALUES ($1::text, $2::text, 'started', $3::int) RETURNING id`,
    [input.manifestId, input.mac, input.requested],
  );
  return rows[0]!.id;
}

export async function finishPieceFetch(
  db: Queryable,
  id: string,
  outcome: {
    status: PieceFetchStatus;
    errorCode: string | null;
    deviceId: string | null;
    sent: number;
    gone: number;
    bytes: number;
  },
): Promise<void> {
  await db.query(
    `UPDATE sync_piece_fetches
        SET status = $2::text, error_code = $3::text, device_id = $4::uuid, pieces_sent = $5::int,
            pieces_gone = $6::int, bytes_sent = $7::bigint, completed_at = now()
      WHERE id = $1::bigint`,
    [id, outcome.status, outcome.errorCode, outcome.deviceId, outcome.sent, outcome.gone, outcome.bytes],
  );
}

export async function deleteOldPieceFetches(db: Queryable, cutoff: Date, batch: number): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM sync_piece_fetches WHERE id IN (
       SELECT id FROM sync_piece_fetches WHERE requested_at < $1::timestamptz ORDER BY requested_at LIMIT $2::int)`,
    [cutoff.toISOString(), batch],
  );
  return rowCount ?? 0;
}
