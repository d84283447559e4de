/** What the release preview reads (preview.ts): the fleet, what each device holds, own rows. */
import type { TableDigest } from '../../contract/canonical.ts';
import type { TableName } from '../../contract/tables.ts';
import type { Queryable } from '../../platform/db.ts';

/** Enabled devices, by location. */
export async function devicesByLocation(db: Queryable): Promise<Map<string, string[]>> {
  const { rows } = await db.query<{ location_id: string; ids: string[] }>(
    `SELECT location_id, array_agg(id ORDER BY id) AS ids FROM devices WHERE is_enabled
      GROUP BY location_id ORDER BY location_id`,
  );
  return new Map(rows.map((r) => [r.location_id, r.ids]));
}

/**
 * What each enabled device holds: the tables of the newest manifest it acked Success for and
 * that was answered with its data or as unchanged (a held answer lists Central's tables, not
 * the device's). A device with none holds nothing Central knows of.
 */
export async function heldByDevice(
  db: Queryable,
  ids: readonly string[],
): Promise<Map<string, TableDigest[]>> {
  const { rows } = await db.query<{ device_id: string; name: TableName; row_count: string; sha256: string }>(
    `SELECT d.id AS device_id, m.table_name AS name, m.row_count, m.sha256
       FROM devices d
      CROSS JOIN LATERAL (
        SELECT h.manifest_id FROM sync_manifest_headers h
         WHERE h.device_id = d.id
           AND EXISTS (SELECT 1 FROM sync_acknowledgements a
                        WHERE a.manifest_id = h.manifest_id AND a.result = 'Success')
           AND EXISTS (SELECT 1 FROM sync_requests r
                        WHERE r.manifest_id = h.manifest_id AND r.status IN ('served', 'unchanged'))
         ORDER BY h.generated_at DESC LIMIT 1) last
       JOIN sync_manifests m ON m.manifest_id = last.manifest_id
      WHERE d.id = ANY($1::uuid[])
      ORDER BY d.id, m.table_order`,
    [ids],
  );
  const held = new Map<string, TableDigest[]>();
  for (const r of rows) {
    const tables = held.get(r.device_id) ?? [];
    tables.push({ name: r.name, rowCount: Number(r.row_count), sha256: r.sha256 });
    held.set(r.device_id, tables);
  }
  return held;
}
