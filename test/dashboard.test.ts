/**
 * The dashboard: its JSON endpoints against the audit rows real syncs left, then the
 * page itself in headless Chromium (Debian's `chromium`, driven by playwright-core),
 * with a screenshot kept in test-artifacts/. Without Chromium the browser part is
 * skipped, unless REQUIRE_BROWSER_TEST=1 (CI sets it) makes that a failure.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { enrollDevice } from '../src/central/fleet/enroll.ts';
import { hourlyCounts } from '../src/central/fleet/repo/admin.ts';
import { hourlyToWire } from '../src/central/fleet/admin-wire.ts';
import { startCentral, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { testSyncer } from './helpers/edge.ts';
import { Fixture } from './helpers/fixtures.ts';

const ADMIN = 'dashboard-admin-token-0123456789';
const SYNCED = '02:00:00:00:d0:01';
const NEVER = '02:00:00:00:d0:02';
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

describe('dashboard', () => {
  let central: TestDatabase;
  let edge: TestDatabase;
  let api: RunningCentral;
  let manifests: string[] = [];

  const get = async (path: string, token = ADMIN) => {
    const res = await fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return {
      status: res.status,
      body: (await res.json()) as Record<string, unknown> & { error?: { code: string } },
    };
  };

  before(async () => {
    central = await createTestDatabase('central');
    edge = await createTestDatabase('edge');
    const f = new Fixture(central.pool);
    const company = await f.company('Acme Foods');
    const location = await f.location(company, 'Plant 1');
    const group = await f.group(company, 'line workers', [location]);
    await f.device(location, SYNCED);
    await f.device(location, NEVER);
    for (let i = 0; i < 20; i++) await f.user(company, `worker${i}@acme.test`, [group]);
    const token = (await enrollDevice(central.pool, SYNCED)).secret;
    api = await startCentral(central, { ADMIN_TOKEN: ADMIN });
    const syncer = testSyncer(edge, api.url, SYNCED, token);
    const first = await syncer.run('cli');
    for (let i = 0; i < 5; i++) await f.user(company, `new${i}@acme.test`, [group]);
    const second = await syncer.run('cli');
    const third = await syncer.run('cli');
    assert.equal(first.status, 'success');
    assert.equal(second.status, 'success');
    assert.equal(third.status, 'unchanged');
    manifests = [first.manifestId!, second.manifestId!, third.manifestId!];
    // A refused request, to show up among the device's errors.
    const refused = await fetch(`${api.url}/api/device-sync/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer wrong' },
      body: JSON.stringify({ mac: SYNCED }),
    });
    assert.equal(refused.status, 401);
  });
  const enabled = async (mac: string) =>
    (await central.pool.query<{ e: boolean }>('SELECT is_enabled AS e FROM devices WHERE mac = $1', [mac]))
      .rows[0]!.e;

  /** The heights of the charts on screen, in CSS pixels. */
  const chartHeights = (page: Page) =>
    page.evaluate(() => {
      const doc = (globalThis as unknown as { document: { querySelectorAll(s: string): Iterable<Sized> } })
        .document;
      type Sized = { offsetParent: unknown; getBoundingClientRect(): { height: number } };
      return [...doc.querySelectorAll('canvas')]
        .filter((c) => c.offsetParent !== null)
        .map((c) => c.getBoundingClientRect().height);
    });

  after(async () => {
    await api?.[Symbol.asyncDispose]();
    await edge?.[Symbol.asyncDispose]();
    await central?.[Symbol.asyncDispose]();
  });

  it('closes every admin endpoint to callers without the admin token', async () => {
    for (const path of [
      '/api/admin/requests/hourly',
      '/api/admin/devices/stale',
      `/api/admin/devices/${SYNCED}`,
      `/api/admin/devices/${SYNCED}/row-deltas`,
    ]) {
      const res = await get(path, 'not-the-token');
      assert.equal(res.status, 401, path);
      assert.equal(res.body.error?.code, 'UNAUTHENTICATED', path);
    }
  });

  it('counts requests by hour and status, and acks by result, as the audit tables hold them', async () => {
    const { rows } = await central.pool.query<{ status: string; n: number }>(
      'SELECT status, count(*)::int AS n FROM sync_requests GROUP BY status',
    );
    const { body } = await get('/api/admin/requests/hourly?hours=24');
    const buckets = body.buckets as {
      hour: string;
      requests: Record<string, number>;
      acks: Record<string, number>;
    }[];
    assert.equal(buckets.length, 24, 'every hour, empty ones too');
    const totals: Record<string, number> = {};
    for (const b of buckets)
      for (const [s, n] of Object.entries(b.requests)) totals[s] = (totals[s] ?? 0) + n;
    assert.deepEqual(totals, Object.fromEntries(rows.map((r) => [r.status, r.n])));
    assert.deepEqual(totals, { served: 2, unchanged: 1, unauthenticated: 1 });
    assert.equal(
      buckets.reduce((n, b) => n + (b.acks.Success ?? 0), 0),
      3,
    );
  });

  it('cuts hours in UTC even when the database session is in a half-hour time zone', async () => {
    const client = await central.pool.connect();
    try {
      await client.query("SET TIME ZONE 'Asia/Kolkata'");
      const wire = hourlyToWire(24, await hourlyCounts(client, 24));
      const total = wire.buckets.reduce(
        (n, b) => n + Object.values(b.requests).reduce((a, c) => a + c, 0),
        0,
      );
      assert.equal(total, 4, 'no count falls between the UTC hours');
    } finally {
      await client.query('RESET TIME ZONE');
      client.release();
    }
  });

  it('lists the devices without a successful ack in N hours', async () => {
    const { body } = await get('/api/admin/devices/stale?hours=1');
    const devices = body.devices as { mac: string; lastSuccessAt: string | null; company: string }[];
    assert.deepEqual(
      devices.map((d) => [d.mac, d.lastSuccessAt, d.company]),
      [[NEVER, null, 'Acme Foods']],
    );
  });

  it('counts failures by code, from requests and from what devices reported', async () => {
    await central.pool.query(
      `INSERT INTO device_reports (device_id, mac, failure_code, failure_message, failure_at)
       SELECT id, mac, 'CA_UNTRUSTED', 'the CA file does not sign Central', now() FROM devices WHERE mac = $1`,
      [NEVER],
    );
    try {
      const { body } = await get('/api/admin/requests/failures?hours=1');
      assert.deepEqual(body, {
        hours: 1,
        failures: [
          { code: 'CA_UNTRUSTED', source: 'device', failures: 1, devices: 1 },
          { code: 'UNAUTHENTICATED', source: 'request', failures: 1, devices: 1 },
        ],
      });
    } finally {
      await central.pool.query('DELETE FROM device_reports WHERE mac = $1', [NEVER]);
    }
  });

  it("gives the row deltas between a device's consecutive manifests", async () => {
    const { body } = await get(`/api/admin/devices/${SYNCED.toUpperCase()}/row-deltas`);
    const list = body.manifests as {
      manifestId: string;
      tables: { name: string; rowCount: number; delta: number | null; changed: boolean | null }[];
    }[];
    assert.deepEqual(
      list.map((m) => m.manifestId),
      manifests,
    );
    const delta = (i: number, table: string) => list[i]!.tables.find((t) => t.name === table)!;
    assert.deepEqual(delta(0, 'users'), { name: 'users', rowCount: 20, delta: null, changed: null });
    assert.deepEqual(delta(1, 'users'), { name: 'users', rowCount: 25, delta: 5, changed: true });
    assert.deepEqual(delta(1, 'group_users'), {
      name: 'group_users',
      rowCount: 25,
      delta: 5,
      changed: true,
    });
    assert.deepEqual(delta(1, 'devices'), { name: 'devices', rowCount: 1, delta: 0, changed: false });
    assert.ok(
      list[2]!.tables.every((t) => t.delta === 0 && !t.changed),
      'the unchanged manifest changes nothing',
    );
  });

  it('tells a table whose content changed with its count the same (an edit) from one unchanged', async () => {
    const mac = '02:00:00:00:d0:99';
    const at = (m: number) => new Date(Date.UTC(2026, 0, 1, 0, m)).toISOString();
    for (const [i, sha] of ['a', 'b', 'b'].entries()) {
      const id = `01EDIT${i}`;
      await central.pool.query(
        `INSERT INTO sync_manifest_headers VALUES ($1, gen_random_uuid(), $2, $3, $3, 1, 'g', '{}')`,
        [id, mac, at(i)],
      );
      await central.pool.query(`INSERT INTO sync_manifests VALUES ($1, $2, 'users', 0, 7, $3, '{}')`, [
        id,
        at(i),
        sha.repeat(64),
      ]);
    }
    const { body } = await get(`/api/admin/devices/${mac}/row-deltas`);
    const users = (body.manifests as { tables: { delta: number | null; changed: boolean | null }[] }[]).map(
      (m) => m.tables[0],
    );
    assert.deepEqual(users, [
      { name: 'users', rowCount: 7, delta: null, changed: null },
      { name: 'users', rowCount: 7, delta: 0, changed: true },
      { name: 'users', rowCount: 7, delta: 0, changed: false },
    ]);
  });

  it('drills into a device: requests, manifests, acks and errors', async () => {
    const { body } = await get(`/api/admin/devices/${SYNCED}`);
    assert.deepEqual(
      (body.manifests as { manifestId: string }[]).map((m) => m.manifestId),
      [...manifests].reverse(),
    );
    assert.deepEqual(
      (body.acks as { manifestId: string; result: string }[]).map((a) => [a.manifestId, a.result]),
      [...manifests].reverse().map((m) => [m, 'Success']),
    );
    assert.deepEqual(
      (body.errors as { source: string; code: string }[]).map((e) => [e.source, e.code]),
      [['request', 'UNAUTHENTICATED']],
    );
  });

  it('renders the page with its charts in headless Chromium', async (t) => {
    if (!CHROMIUM) {
      if (process.env.REQUIRE_BROWSER_TEST === '1')
        assert.fail('Chromium is not installed (apt-get install chromium)');
      t.skip('Chromium is not installed (apt-get install chromium)');
      return;
    }
    const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const problems: string[] = [];
      page.on('pageerror', (err) => problems.push(err.message));
      // Errors belong on the page: a browser dialog would block a wall screen.
      page.on('dialog', (dialog) => problems.push(`dialog: ${dialog.message()}`));
      page.on('console', (msg) => {
        // The bad MAC's 400 is expected, by its URL: the console may report it after the page moved on.
        const badMac = msg.text().includes('400') && msg.location().url.includes('not-a-mac');
        const expected = msg.text().includes('401') || badMac;
        if (msg.type() === 'error' && !expected) problems.push(msg.text());
      });
      await page.goto(`${api.url}/dashboard`);
      // Without a token the page asks for one; a wrong one is refused with a message.
      await page.locator('#login[open]').waitFor({ timeout: 10_000 });
      await page.fill('#token', 'wrong');
      await page.click('#login-form button[type=submit]');
      await page.locator('#login-error:not([hidden])').waitFor({ timeout: 10_000 });
      await page.fill('#token', ADMIN);
      await page.click('#login-form button[type=submit]');
      await page.locator('body[data-state=ready]').waitFor({ timeout: 10_000 });

      assert.equal(await page.textContent('#card-requests'), '4');
      // A fresh install: the charts start at its first hour, not 48 hours back (at least 6 drawn).
      assert.equal(await page.getAttribute('body', 'data-hours-drawn'), '6');
      assert.equal(await page.textContent('#card-acks'), '100.0 %');
      assert.equal(await page.textContent('#card-stale'), '1');
      const charted = await page.evaluate(() => {
        const chart = (
          globalThis as unknown as {
            Chart: { getChart(id: string): { data: { datasets: { label: string; data: number[] }[] } } };
          }
        ).Chart.getChart('requests-chart');
        return Object.fromEntries(
          chart.data.datasets.map((d) => [d.label, d.data.reduce((a, b) => a + b, 0)]),
        );
      });
      assert.deepEqual(charted, { served: 2, unchanged: 1, unauthenticated: 1 });
      assert.deepEqual(await page.locator('#stale-table tbody td:first-child').allTextContents(), [NEVER]);
      assert.deepEqual(await page.locator('#failures-table tbody td:first-child').allTextContents(), [
        'UNAUTHENTICATED',
      ]);

      await page.fill('#device-mac', SYNCED);
      await page.click('#device-form button[type=submit]');
      await page.locator(`body[data-device="${SYNCED}"]`).waitFor({ timeout: 10_000 });
      const deltaRows = await page.locator('#deltas-table tbody tr').allTextContents();
      assert.equal(deltaRows.length, 2, 'the unchanged manifest is hidden');
      assert.match(deltaRows[0]!, new RegExp(`^${manifests[1]}.*\\+5.*\\+5`));
      assert.match((await page.textContent('#manifests-table tbody'))!, new RegExp(manifests[0]!));
      assert.match((await page.textContent('#errors-table tbody'))!, /UNAUTHENTICATED/);
      await page.uncheck('#changed-only');
      await page.locator('#deltas-table tbody tr').nth(2).waitFor({ timeout: 10_000 });
      assert.equal(await page.locator('#deltas-table tbody tr').count(), 3, 'all manifests when asked');
      const lines = await page.evaluate(
        () =>
          (
            globalThis as unknown as { Chart: { getChart(id: string): { data: { datasets: unknown[] } } } }
          ).Chart.getChart('deltas-chart').data.datasets.length,
      );
      assert.equal(lines, 8, 'a line per table');

      assert.equal(await page.textContent('#served-versions'), '1');
      assert.ok((await page.locator('#versions-table tbody tr').count()) >= 1);

      // A bad MAC: the error is shown on the page, and cleared by the next good answer.
      await page.fill('#device-mac', 'not-a-mac');
      await page.click('#device-form button[type=submit]');
      await page.locator('#page-error:not([hidden])').waitFor({ timeout: 10_000 });
      assert.match((await page.textContent('#page-error'))!, /^INVALID_MAC: /);
      await page.fill('#device-mac', SYNCED);
      await page.click('#device-form button[type=submit]');
      await page.locator('#page-error').waitFor({ state: 'hidden', timeout: 10_000 });

      // The fleet: every device, found by typing; a click opens it.
      assert.deepEqual(await page.locator('#fleet-table tbody td:first-child').allTextContents(), [
        SYNCED,
        NEVER,
      ]);
      await page.fill('#fleet-search', 'never synced');
      assert.deepEqual(await page.locator('#fleet-table tbody td:first-child').allTextContents(), [NEVER]);
      await page.locator('#fleet-table tbody tr').first().click();
      await page.locator(`body[data-device="${NEVER}"]`).waitFor({ timeout: 10_000 });
      // An action asks first, on the page: cancelled, nothing changes; confirmed, it is done and audited.
      await page.click('#device-detail [data-action=disable]');
      await page.locator('#confirm[open]').waitFor({ timeout: 10_000 });
      await page.click('#confirm-cancel');
      assert.equal(await enabled(NEVER), true, 'cancelled');
      for (const action of ['disable', 'enable'] as const) {
        await page.click(`#device-detail [data-action=${action}]`);
        await page.click('#confirm-ok');
        await page.locator(`body[data-acted="${action} ${NEVER}"]`).waitFor({ timeout: 10_000 });
        assert.equal(await enabled(NEVER), action === 'enable', action);
        if (action === 'disable') assert.match((await page.textContent('#device-summary'))!, /disabled/);
      }
      const events = await central.pool.query<{ action: string }>(
        `SELECT action FROM device_admin_events WHERE mac = $1 AND action IN ('disable', 'enable') ORDER BY id`,
        [NEVER],
      );
      assert.deepEqual(events.rows, [{ action: 'disable' }, { action: 'enable' }]);

      // Releases (docs/releases.md): a pause asks first, shows on the page and is audited as the dashboard's.
      assert.equal(await page.getAttribute('body', 'data-release'), 'running');
      await page.click('[data-release-action=pause]');
      await page.click('#confirm-ok');
      await page.locator('body[data-release=paused]').waitFor({ timeout: 10_000 });
      assert.match((await page.textContent('#release-state'))!, /^Paused .* by api:dashboard@127\.0\.0\.1\./);
      await page.click('[data-release-action=resume]');
      await page.click('#confirm-ok');
      await page.locator('body[data-release=running]').waitFor({ timeout: 10_000 });
      const released = await central.pool.query<{ action: string }>(
        'SELECT action FROM release_events ORDER BY id',
      );
      assert.deepEqual(released.rows, [{ action: 'pause' }, { action: 'resume' }]);

      await page.setViewportSize({ width: 1280, height: 900 });
      for (const height of await chartHeights(page))
        assert.ok(height >= 200, `a chart ${height} px high at 1280 px`);
      await mkdir('test-artifacts', { recursive: true });
      await page.screenshot({ path: 'test-artifacts/dashboard.png', fullPage: true });

      // At phone width nothing is cut off: the page is no wider than the screen.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.reload();
      await page.locator('body[data-state=ready]').waitFor({ timeout: 10_000 });
      const widths = await page.evaluate(() => {
        const { document: doc, innerWidth } = globalThis as unknown as {
          document: { documentElement: { scrollWidth: number } };
          innerWidth: number;
        };
        return [doc.documentElement.scrollWidth, innerWidth];
      });
      assert.ok(widths[0]! <= widths[1]!, `page ${widths[0]} px wide on a ${widths[1]} px screen`);
      const phone = await chartHeights(page);
      assert.equal(phone.length, 2, 'both overview charts shown');
      for (const height of phone) assert.ok(height >= 150, `a chart ${height} px high at 390 px`);
      await page.screenshot({ path: 'test-artifacts/dashboard-phone.png', fullPage: true });
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });
});
