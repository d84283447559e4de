/**
 * The dashboard's queries stay fast as the audit trail grows: over 1,000,000 request
 * rows and 1,000,000 manifest-table rows, the plan of every query the admin API runs
 * (taken from the repository functions themselves) reads the audit tables through
 * indexes only, never by scanning a whole table.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Queryable } from '../src/platform/db.ts';
import {
  deviceActivity,
  hourlyCounts,
  requestCountsByStatus,
  rowDeltas,
} from '../src/central/fleet/repo/admin.ts';
import { listDevices } from '../src/central/fleet/repo/device-admin.ts';
import { TABLE_NAMES } from '../src/contract/tables.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { fillAuditTrail } from '../bench/lib/audit-fill.ts';

const AUDIT_TABLES = new Set([
  'sync_requests',
  'sync_manifest_headers',
  'sync_manifests',
  'sync_acknowledgements',
]);
const DEVICES = 1000;
const REQUESTS = 1_000_000;
const MANIFESTS = 125_000; // × 8 tables = 1,000,000 sync_manifests rows

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

function scans(node: PlanNode, out: string[] = []): string[] {
  if (node['Relation Name']) out.push(`${node['Node Type']} on ${node['Relation Name']}`);
  for (const child of node.Plans ?? []) scans(child, out);
  return out;
}

/** A Queryable that plans instead of running: the repository's own SQL, explained. */
function explaining(db: Queryable, plans: PlanNode[]): Queryable {
  return {
    query: (async (text: string, params?: unknown[]) => {
      const { rows } = await db.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(
        `EXPLAIN (FORMAT JSON) ${text}`,
        params,
      );
      plans.push(rows[0]!['QUERY PLAN'][0]!.Plan);
      return { rows: [], rowCount: 0 };
    }) as Queryable['query'],
  } as Queryable;
}

describe('audit table query plans at 1,000,000 rows', () => {
  let db: TestDatabase;

  before(async () => {
    db = await createTestDatabase('central');
    await fillAuditTrail(db.pool, { devices: DEVICES, requests: REQUESTS, manifests: MANIFESTS });
  });
  after(async () => {
    await db?.[Symbol.asyncDispose]();
  });

  it('holds the rows it claims', async () => {
    const { rows } = await db.pool.query<{ r: number; m: number }>(
      'SELECT (SELECT count(*) FROM sync_requests)::int AS r, (SELECT count(*) FROM sync_manifests)::int AS m',
    );
    assert.deepEqual(rows[0], { r: REQUESTS, m: MANIFESTS * TABLE_NAMES.length });
  });

  const mac = '02:00:00:00:01:2c';
  const queries: [string, (db: Queryable) => Promise<unknown>][] = [
    ['requests by status, 24 h', (d) => requestCountsByStatus(d, 24)],
    ['requests and acks by hour, 48 h', (d) => hourlyCounts(d, 48)],
    [
      'devices without an ack in 24 h, with their total',
      (d) => listDevices(d, { staleHours: 24, limit: 200 }),
    ],
    ['the device list, a page after a MAC', (d) => listDevices(d, { afterMac: mac, limit: 500 })],
    ['row deltas of a device', (d) => rowDeltas(d, mac, 30)],
    ['device drill-down', (d) => deviceActivity(d, mac, 50)],
  ];
  for (const [name, run] of queries) {
    it(`plans "${name}" without a whole-table scan of an audit table`, async () => {
      const plans: PlanNode[] = [];
      await run(explaining(db.pool, plans));
      assert.ok(plans.length > 0);
      const audit = plans.flatMap((p) => scans(p)).filter((s) => AUDIT_TABLES.has(s.split(' on ')[1]!));
      assert.ok(audit.length > 0, 'the query reads an audit table');
      assert.deepEqual(
        audit.filter((s) => s.startsWith('Seq Scan')),
        [],
        `plans: ${audit.join('; ')}`,
      );
    });
  }

  it('needs the indexes of migration 0006: without them the same plans scan whole tables', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`DROP INDEX sync_acknowledgements_completed_at_idx, sync_acknowledgements_success_idx,
                            sync_manifest_headers_mac_generated_idx, sync_requests_errors_idx,
                            sync_acknowledgements_failed_idx`);
      const plans: PlanNode[] = [];
      for (const [, run] of queries) await run(explaining(client, plans));
      const seqScans = plans.flatMap((p) => scans(p)).filter((s) => s.startsWith('Seq Scan on sync_'));
      assert.ok(seqScans.length > 0, 'some query falls back to scanning');
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });
});
