/** Manifests (`sync_manifest_headers`, `sync_manifests`) and acknowledgements. */
import { prepared, type Queryable } from '../../../platform/db.ts';
import { acceptedHashesSql } from './devices.ts';
import type { Manifest } from '../../../contract/wire.ts';
import {
  ackToWire,
  manifestHeaderFromRow,
  type AckBody,
  type AckRow,
  type ManifestHeader,
  type ManifestHeaderRow,
} from '../../model.ts';
import type { AckResponse } from '../../../contract/wire.ts';

/**
 * Writes each manifest's header and its rows, one per table, in one statement (so atomic
 * without a transaction), for many manifests at once (see platform/batcher.ts).
 */
export async function insertManifests(
  db: Queryable,
  items: readonly { manifest: Manifest; mac: string }[],
): Promise<void> {
  const tables = items.flatMap(({ manifest }) =>
    manifest.tables.map((t, i) => ({ id: manifest.manifestId, ...t, ord: i + 1 })),
  );
  await db.query(
    prepared(
      'insert-manifests',
      `WITH h AS (
       INSERT INTO sync_manifest_headers
         (manifest_id, device_id, mac, generated_at, expires_at, schema_version, global_sha256, filter_desc)
       SELECT * FROM unnest($1::text[], $2::uuid[], $3::macaddr[], $4::timestamptz[], $5::timestamptz[],
                            $6::integer[], $7::text[], $8::jsonb[])
       RETURNING manifest_id, generated_at, filter_desc)
     INSERT INTO sync_manifests (manifest_id, generated_at, table_name, table_order, row_count, sha256, filter_desc)
     SELECT h.manifest_id, h.generated_at, t.name, t.ord, t.row_count, t.sha256, h.filter_desc
       FROM unnest($9::text[], $10::text[], $11::bigint[], $12::text[], $13::smallint[])
              AS t(manifest_id, name, row_count, sha256, ord)
       JOIN h ON h.manifest_id = t.manifest_id`,
      [
        items.map((x) => x.manifest.manifestId),
        items.map((x) => x.manifest.filters.deviceId),
        items.map((x) => x.mac),
        items.map((x) => x.manifest.generatedAt),
        items.map((x) => x.manifest.expiresAt),
        items.map((x) => x.manifest.schemaVersion),
        items.map((x) => x.manifest.globalSha256),
        items.map((x) => JSON.stringify(x.manifest.filters)),
        tables.map((t) => t.id),
        tables.map((t) => t.name),
        tables.map((t) => t.rowCount),
        tables.map((t) => t.sha256),
        tables.map((t) => t.ord),
      ],
    ),
  );
}

/** A manifest's header with the hashes its device's credential verifies against. */
export type CheckedHeader = ManifestHeader & { secretHashes: readonly string[] };

/** Each manifest's header and the hashes its device's credential verifies against, in one round trip. */
export async function findManifestHeaders(
  db: Queryable,
  manifestIds: readonly string[],
): Promise<(CheckedHeader | undefined)[]> {
  const { rows } = await db.query<ManifestHeaderRow & { secret_hashes: string[] | null }>(
    `SELECT h.manifest_id, h.device_id, h.mac::text AS mac, h.generated_at, h.expires_at,
            -- The ack of a wipe is taken with the credential the wipe was proved with, even revoked.
            CASE WHEN w.last_manifest_id = h.manifest_id THEN ARRAY[c.secret_hash]
                 ELSE ${acceptedHashesSql('c')} END AS secret_hashes
       FROM sync_manifest_headers h LEFT JOIN device_credentials c ON c.device_id = h.device_id
       LEFT JOIN device_wipes w ON w.device_id = h.device_id
      WHERE h.manifest_id = ANY($1::text[])`,
    [manifestIds],
  );
  const byId = new Map(rows.map((r) => [r.manifest_id, r]));
  return manifestIds.map((id) => {
    const row = byId.get(id);
    return row && { ...manifestHeaderFromRow(row), secretHashes: row.secret_hashes ?? [] };
  });
}

/**
 * Stores the first ack of each manifest; later ones change nothing. Answers, per ack in
 * order, the ack stored for its manifest (its own, or the one that came first).
 */
export async function insertAcksOnce(
  db: Queryable,
  items: readonly { ack: AckBody; mac: string }[],
): Promise<AckResponse[]> {
  const ids = items.map((x) => x.ack.manifestId);
  const { rows } = await db.query<AckRow>(
    `WITH ins AS (
       INSERT INTO sync_acknowledgements
         (manifest_id, mac, result, duration_ms, device_counts_json, device_hashes_json, error_text, payload_sha256)
       SELECT * FROM unnest($1::text[], $2::macaddr[], $3::text[], $4::integer[], $5::jsonb[], $6::jsonb[],
                            $7::text[], $8::text[])
       ON CONFLICT (manifest_id) DO NOTHING
       RETURNING manifest_id, result, completed_at)
     SELECT * FROM ins
     UNION ALL
     SELECT manifest_id, result, completed_at FROM sync_acknowledgements
      WHERE manifest_id = ANY($1::text[]) AND manifest_id NOT IN (SELECT manifest_id FROM ins)`,
    [
      ids,
      items.map((x) => x.mac),
      items.map((x) => x.ack.status),
      items.map((x) => x.ack.durationMs),
      items.map((x) => JSON.stringify(x.ack.localCounts)),
      items.map((x) => JSON.stringify(x.ack.localChecksums)),
      items.map((x) => x.ack.error),
      items.map((x) => x.ack.payloadSha256 ?? null),
    ],
  );
  let found = new Map(rows.map((r) => [r.manifest_id, r]));
  // A concurrent twin committed after this statement's snapshot was taken: read it now.
  if (ids.some((id) => !found.has(id))) {
    const again = await db.query<AckRow>(
      'SELECT manifest_id, result, completed_at FROM sync_acknowledgements WHERE manifest_id = ANY($1::text[])',
      [ids],
    );
    found = new Map(again.rows.map((r) => [r.manifest_id, r]));
  }
  return ids.map((id) => ackToWire(found.get(id)!));
}
