/**
 * The Grafana provisioning that the Central Compose stack mounts: every panel names a
 * provisioned data source, every SQL query runs against a migrated Central database,
 * and every Prometheus expression names metrics our services export.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { parse } from 'yaml';
import { exportedMetricNames, isExported } from './helpers/metrics.ts';
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
  templating: { list: { name: string; type: string; query?: string; datasource?: { uid: string } }[] };
};
const sources = parse(await readFile(new URL('provisioning/datasources/datasources.yaml', ROOT), 'utf8')) as {
  datasources: { uid: string; type: string }[];
};
const targets: (Target & { panel: string })[] = [
  ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t }))),
  // A variable filled by a query (the MAC picker) runs it as the panels' SQL does.
  ...dashboard.templating.list.flatMap((v) =>
    v.type === 'query'
      ? [{ panel: `variable $${v.name}`, refId: 'query', datasource: v.datasource!, rawSql: v.query }]
      : [],
  ),
];

/** `${name:sqlstring}` as Grafana formats it: quoted, with every ' doubled. */
const sqlstring = (value: string) => `'${value.replaceAll("'", "''")}'`;

/** Grafana's macros and this dashboard's variables, as Grafana would expand them. */
function expand(
  sql: string,
  values: Record<string, string> = { mac: '02:00:00:00:00:01', stale_hours: '24' },
): string {
  return sql
    .replace(/\$__timeFilter\(([^)]+)\)/g, "$1 BETWEEN now() - interval '2 days' AND now()")
    .replace(/\$\{([a-z_]+):sqlstring\}/g, (_, name: string) => sqlstring(values[name]!));
}

describe('Grafana provisioning', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('central');
  });
  after(async () => {
    await db?.[Symbol.asyncDispose]();
  });

  it('shows the fleet at a glance: stat panels, failures by code, devices by version, a MAC picker', () => {
    const titles = dashboard.panels.map((p) => p.title);
    assert.ok(dashboard.panels.filter((p) => p.type === 'stat').length >= 3, titles.join(', '));
    assert.ok(
      titles.some((t) => /^Failures by error code/.test(t)),
      titles.join(', '),
    );
    assert.ok(
      titles.some((t) => /^Devices by version/.test(t)),
      titles.join(', '),
    );
    const mac = dashboard.templating.list.find((v) => v.name === 'mac');
    assert.equal(mac?.type, 'query', 'the MAC is picked from the devices, not typed');
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

  it('pastes no variable into SQL as raw text: every one is an escaped ${name:sqlstring}', () => {
    for (const t of targets.filter((x) => x.rawSql)) {
      const raw = t.rawSql!.replace(/\$\{[a-z_]+:sqlstring\}/g, '').replace(/\$__[a-zA-Z]+/g, '');
      assert.doesNotMatch(raw, /\$/, `${t.panel} ${t.refId}: ${t.rawSql}`);
    }
  });

  it('reads through a role that can write nothing, and a hostile variable stays a value', async () => {
    const sql = await readFile(new URL('../../central/grafana-reader.sql', ROOT), 'utf8');
    await db.pool.query(sql.replace(":'grafana_password'", "'reader-pw'"));
    const url = new URL(db.url);
    url.username = 'grafana_reader';
    url.password = 'reader-pw';
    const reader = new pg.Client({ connectionString: url.toString() });
    await reader.connect();
    try {
      for (const t of targets.filter((x) => x.rawSql)) {
        await reader
          .query(expand(t.rawSql!))
          .catch((err: Error) => assert.fail(`${t.panel}: ${err.message}`));
      }
      await db.pool.query("INSERT INTO sync_requests (mac, status) VALUES ('02:00:00:00:00:01', 'served')");
      const hostile = {
        mac: "02:00:00:00:00:01'::macaddr; DELETE FROM sync_requests; --",
        stale_hours: '1); DELETE FROM sync_requests; --',
      };
      for (const t of targets.filter((x) => x.rawSql))
        await reader.query(expand(t.rawSql!, hostile)).catch(() => undefined);
      await assert.rejects(
        reader.query('DELETE FROM sync_requests'),
        /read-only transaction|permission denied/,
      );
      const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM sync_requests');
      assert.equal(rows[0].n, 1);
    } finally {
      await reader.end();
      await db.pool.query('DROP OWNED BY grafana_reader; DROP ROLE grafana_reader').catch(() => undefined);
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
    const exported = await exportedMetricNames();
    const used = targets.flatMap((t) =>
      [...(t.expr ?? '').matchAll(/\b(dbupdate_[a-z_]+)/g)].map((m) => m[1]!),
    );
    assert.ok(used.length >= 15);
    for (const name of used) assert.ok(isExported(exported, name), `${name} is not exported`);
  });
});
