/**
 * The Grafana provisioning that the Central Compose stack mounts: every panel names a
 * provisioned data source, every SQL query runs against a migrated Central database,
 * and every Prometheus expression names metrics our services export.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { CentralMetrics } from '../src/central/metrics.ts';
import { EdgeMetrics } from '../src/edge/metrics.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

const ROOT = new URL('../deploy/observability/grafana/', import.meta.url);

interface Target {
  refId: string;
  datasource: { uid: string };
  rawSql?: string;
  expr?: string;
}
interface Panel {
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: Target[];
}

const dashboard = JSON.parse(await readFile(new URL('dashboards/dbupdate-overview.json', ROOT), 'utf8')) as {
  panels: Panel[];
  templating: { list: { name: string }[] };
};
const sources = parse(await readFile(new URL('provisioning/datasources/datasources.yaml', ROOT), 'utf8')) as {
  datasources: { uid: string; type: string }[];
};
const targets = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));

/** Grafana's macros and this dashboard's variables, as Grafana would expand them. */
function expand(sql: string): string {
  return sql
    .replace(/\$__timeFilter\(([^)]+)\)/g, "$1 BETWEEN now() - interval '2 days' AND now()")
    .replaceAll('$stale_hours', '24')
    .replaceAll('$mac', '02:00:00:00:00:01');
}

describe('Grafana provisioning', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('central');
  });
  after(async () => {
    await db?.[Symbol.asyncDispose]();
  });

  it('points every panel and query at a provisioned data source', () => {
    const uids = new Set(sources.datasources.map((d) => d.uid));
    assert.ok(targets.length >= 20, `targets: ${targets.length}`);
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) {
      assert.ok(p.datasource && uids.has(p.datasource.uid), p.title);
      for (const t of p.targets ?? []) assert.ok(uids.has(t.datasource.uid), `${p.title} ${t.refId}`);
    }
    const variables = new Set(dashboard.templating.list.map((v) => v.name));
    for (const t of targets) {
      for (const [, name] of (t.rawSql ?? t.expr ?? '').matchAll(/\$([a-z_]+)/g)) {
        assert.ok(name!.startsWith('_') || variables.has(name!), `${t.panel}: unknown variable $${name}`);
      }
    }
  });

  it('runs every SQL query against the Central schema', async () => {
    const sql = targets.filter((t) => t.rawSql);
    assert.ok(sql.length >= 9);
    for (const t of sql) {
      await db.pool
        .query(expand(t.rawSql!))
        .catch((err: Error) => assert.fail(`${t.panel} ${t.refId}: ${err.message}`));
    }
  });

  it('uses only metrics that Central and Edge export', async () => {
    const exported = new Set<string>();
    for (const registry of [
      new CentralMetrics({ defaults: false }).registry,
      new EdgeMetrics({ defaults: false }).registry,
    ]) {
      for (const metric of await registry.getMetricsAsJSON()) exported.add(metric.name);
    }
    const used = targets.flatMap((t) =>
      [...(t.expr ?? '').matchAll(/\b(dbupdate_[a-z_]+)/g)].map((m) => m[1]!),
    );
    assert.ok(used.length >= 15);
    for (const name of used) {
      const base = name.replace(/_(bucket|sum|count)$/, '');
      assert.ok(exported.has(base), `${name} is not exported`);
    }
  });
});
