/** Manifests (`sync_manifest_headers`, `sync_manifests`) and acknowledgements. */
import type { Queryable } from '../../platform/db.ts';
import { acceptedHashesSql } from './devices.ts';
import type { Manifest } from '../../contract/wire.ts';
import {
  ackToWire,
  manifestHeaderFromRow,
  type AckBody,
  type AckRow,
  type ManifestHeader,
  type ManifestHeaderRow,
} from '../model.ts';
import type { AckResponse } from '../../contract/wire.ts';

/** Writes the header and one row per table, in one statement (so atomic without a transaction). */
export async function insertManifest(db: Queryable, manifest: Manifest, mac: string): Promise<void> {
  await db.query(
    `WITH h AS (
       INSERT INTO sync_manifest_headers
         (manifest_id, device_id, mac, generated_at, expires_at, schema_version, global_sha256, filter_desc)
       VALUES ($1::text, $2::uuid, $3::macaddr, $4::timestamptz, $5::timestamptz, $6::integer, $7::text, $8::jsonb)
       RETURNING manifest_id, generated_at, filter_desc)
     INSERT INTO sync_manifests (manifest_id, generated_at, table_name, table_order, row_count, sha256, filter_desc)
     SELECT h.manifest_id, h.generated_at, t.name, t.ord, t.row_count, t.sha256, h.filter_desc
       FROM h, unnest($9::text[], $10::bigint[], $11::text[]) WITH ORDINALITY AS t(name, row_count, sha256, ord)`,
    [
      manifest.manifestId,
      manifest.filters.deviceId,
      mac,
      manifest.generatedAt,
      manifest.expiresAt,
      manifest.schemaVersion,
      manifest.globalSha256,
      JSON.stringify(manifest.filters),
      manifest.tables.map((t) => t.name),
      manifest.tables.map((t) => t.rowCount),
      manifest.tables.map((t) => t.sha256),
    ],
  );
}

/** A manifest's header and the hashes its device's credential verifies against, in one round trip. */
export async function findManifestHeader(
  db: Queryable,
  manifestId: string,
): Promise<(ManifestHeader & { secretHashes: readonly string[] }) | undefined> {
  const { rows } = await db.query<ManifestHeaderRow & { secret_hashes: string[] | null }>(
    `SELECT h.manifest_id, h.device_id, h.mac::text AS mac, h.generated_at, h.expires_at,
            ${acceptedHashesSql('c')} AS secret_hashes
       FROM sync_manifest_headers h LEFT JOIN device_credentials c ON c.device_id = h.device_id
      WHERE h.manifest_id = $1::text`,
    [manifestId],
  );
  return rows[0] && { ...manifestHeaderFromRow(rows[0]), secretHashes: rows[0].secret_hashes ?? [] };
}

/** Stores the first ack for a manifest; later ones change nothing. Returns the stored ack either way. */
export async function insertAckOnce(db: Queryable, ack: AckBody, mac: string): Promise<AckResponse> {
  const { rows } = await db.query<AckRow>(
    `WITH ins AS (
       INSERT INTO sync_acknowledgements
         (manifest_id, mac, result, duration_ms, device_counts_json, device_hashes_json, error_text, payload_sha256)
       VALUES ($1::text, $2::macaddr, $3::text, $4::integer, $5::jsonb, $6::jsonb, $7::text, $8::text)
       ON CONFLICT (manifest_id) DO NOTHING
       RETURNING manifest_id, result, completed_at)
     SELECT * FROM ins
     UNION ALL
     SELECT manifest_id, result, completed_at FROM sync_acknowledgements WHERE manifest_id = $1::text`,
    [
      ack.manifestId,
      mac,
      ack.status,
      ack.durationMs,
      JSON.stringify(ack.localCounts),
      JSON.stringify(ack.localChecksums),
      ack.error,
      ack.payloadSha256 ?? null,
    ],
  );
  if (rows[0]) return ackToWire(rows[0]);
  // A concurrent twin committed after this statement's snapshot was taken: read it now.
  const again = await db.query<AckRow>(
    'SELECT manifest_id, result, completed_at FROM sync_acknowledgements WHERE manifest_id = $1::text',
    [ack.manifestId],
  );
  return ackToWire(again.rows[0]!);
}
