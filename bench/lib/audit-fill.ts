/**
 * A large audit trail for plan tests and the audit benchmark: `requests` request rows
 * over 90 days across `devices` devices, and `manifests` manifests (8 table rows and
 * one ack each), all set-based so a million rows take seconds.
 */
import type { Queryable } from '../../src/platform/db.ts';
import { TABLE_NAMES } from '../../src/contract/tables.ts';

export async function fillAuditTrail(
  db: Queryable,
  { devices, requests, manifests }: { devices: number; requests: number; manifests: number },
): Promise<void> {
  const MAC = `'02:00:00:00:' || lpad(to_hex((n % ${devices}) / 256), 2, '0') || ':' || lpad(to_hex((n % ${devices}) % 256), 2, '0')`;
  const q = (sql: string) => db.query(sql);
  await q(`INSERT INTO companies VALUES ('00000000-0000-0000-0000-00000000c001', 'Big Co', now(), now())`);
  await q(`INSERT INTO locations VALUES ('00000000-0000-0000-0000-00000000a001',
               '00000000-0000-0000-0000-00000000c001', 'Site', NULL, 'UTC', now(), now())`);
  await q(`INSERT INTO devices SELECT md5('d' || n)::uuid, '00000000-0000-0000-0000-00000000a001',
               (${MAC})::macaddr, 'dev ' || n, true, now(), now() FROM generate_series(0, ${devices - 1}) n`);
  await q(`INSERT INTO sync_requests (mac, requested_at, completed_at, status, error_code, duration_ms, bytes_sent)
             SELECT ${MAC}, t, t, CASE WHEN n % 50 = 0 THEN 'error' ELSE 'served' END,
                    CASE WHEN n % 50 = 0 THEN 'SNAPSHOT_FAILED' END, 20, 1000
               FROM generate_series(1, ${requests}) n, LATERAL (SELECT now() - (n::float8 / ${requests}) * interval '90 days' AS t) x`);
  await q(`INSERT INTO sync_manifest_headers
             SELECT 'M' || lpad(n::text, 10, '0'), md5('d' || (n % ${devices}))::uuid, (${MAC})::macaddr,
                    t, t + interval '1 hour', 1, md5(n::text), '{}'
               FROM generate_series(1, ${manifests}) n, LATERAL (SELECT now() - (n::float8 / ${manifests}) * interval '90 days' AS t) x`);
  await q(`INSERT INTO sync_manifests
             SELECT h.manifest_id, h.generated_at, t.name, t.ord - 1, 10 + t.ord, md5(h.manifest_id || t.name), '{}'
               FROM sync_manifest_headers h, unnest('{${TABLE_NAMES.join(',')}}'::text[]) WITH ORDINALITY t(name, ord)`);
  await q(`INSERT INTO sync_acknowledgements
             SELECT manifest_id, mac, generated_at + interval '1 minute',
                    CASE WHEN random() < 0.02 THEN 'Failed' ELSE 'Success' END, 100, '{}', '{}', NULL, NULL
               FROM sync_manifest_headers`);
  await q('ANALYZE');
}
