/**
 * The alerting rules the Central stack's Prometheus loads: valid for `promtool`, each
 * alert firing on the series its unit tests give (deploy/observability/alerts.test.yml),
 * and naming only metrics, outcomes and codes our services export.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { ERROR_CODES } from '../src/platform/errors.ts';
import { exportedMetricNames, isExported } from './helpers/metrics.ts';

const DIR = 'deploy/observability';
const rules = parse(readFileSync(`${DIR}/alerts.yml`, 'utf8')) as {
  groups: { rules: { alert: string; expr: string; annotations: Record<string, string> }[] }[];
};
const alerts = rules.groups.flatMap((g) => g.rules);
const promtool = spawnSync('promtool', ['--version']).status === 0;
// CI installs Debian's prometheus package (.ci/run); elsewhere the check says what is missing.
const needPromtool =
  promtool || process.env.CI ? {} : { skip: 'promtool is not installed (apt-get install prometheus)' };

describe('alerting rules', () => {
  it('pass promtool check rules', needPromtool, () => {
    const run = spawnSync('promtool', ['check', 'rules', `${DIR}/alerts.yml`], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, new RegExp(`SUCCESS: ${alerts.length} rules found`));
  });

  it('fire on the series of their unit tests, and stay quiet before', needPromtool, () => {
    const run = spawnSync('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: DIR, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    // Every alert of the file has a test that expects it to fire.
    const tested = readFileSync(`${DIR}/alerts.test.yml`, 'utf8');
    for (const { alert } of alerts) assert.match(tested, new RegExp(`alertname: ${alert}\\n`), alert);
  });

  it('name only metrics, outcomes and error codes the services export', async () => {
    const exported = await exportedMetricNames();
    const outcomes = readFileSync('src/central/sync/repo/requests.ts', 'utf8');
    for (const { alert, expr } of alerts) {
      for (const [name] of expr.matchAll(/\bdbupdate_[a-z_]+/g))
        assert.ok(isExported(exported, name), `${alert}: ${name} is not exported`);
      for (const [, outcome] of expr.matchAll(/outcome="([a-z_]+)"/g))
        assert.match(outcomes, new RegExp(`\\| '${outcome}'`), `${alert}: no request outcome ${outcome}`);
      for (const [, code] of expr.matchAll(/code="([A-Z_]+)"/g))
        assert.ok(code! in ERROR_CODES, `${alert}: no error code ${code}`);
    }
    assert.ok(alerts.length >= 10);
  });

  it('link each to its entry in docs/runbook.md', () => {
    const runbook = readFileSync('docs/runbook.md', 'utf8');
    const anchors = new Set([...runbook.matchAll(/^## (\w+)$/gm)].map((m) => m[1]!.toLowerCase()));
    for (const a of alerts) {
      assert.equal(a.annotations.runbook_url, `docs/runbook.md#${a.alert.toLowerCase()}`, a.alert);
      assert.ok(anchors.has(a.alert.toLowerCase()), `docs/runbook.md has no section ${a.alert}`);
    }
    assert.equal(anchors.size, alerts.length, 'a section per alert, and none for an alert that is gone');
  });

  it('are loaded by the stack: Prometheus reads them and sends to the Alertmanager service', () => {
    const prometheus = parse(readFileSync(`${DIR}/prometheus.yml`, 'utf8')) as {
      rule_files: string[];
      alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
    };
    const compose = parse(readFileSync('deploy/central/compose.yaml', 'utf8')) as {
      services: Record<string, { volumes?: string[] }>;
    };
    const mounts = compose.services.prometheus!.volumes!;
    for (const file of prometheus.rule_files)
      assert.ok(mounts.includes(`../observability/alerts.yml:${file}:ro`), `${file} is not mounted`);
    const target = prometheus.alerting.alertmanagers[0]!.static_configs[0]!.targets[0]!;
    assert.ok(compose.services[target.split(':')[0]!], `no service ${target}`);
  });
});
