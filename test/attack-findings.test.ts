/**
 * The attack round of issue 32, one test per finding: each failed on the code before its fix.
 * Central on a real port over a real database; answers judged by status, code and what the
 * database holds afterwards.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { importDirectory } from '../src/central/fleet/import.ts';
import { isAppError } from '../src/platform/errors.ts';
import { startCentral, seedEnrolledDevices, type RunningCentral } from './helpers/central.ts';
import { dbupdate } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { TEST_KEYS } from './helpers/keys.ts';
import { rawSnapshotRequest } from './helpers/snapshot.ts';

const ADMIN = 'an-admin-token-long-enough-0123456789';

describe('attack findings (issue 32)', () => {
  let db: TestDatabase;
  let api: RunningCentral;
  let macs: string[];
  let tokens: Map<string, string>;

  before(async () => {
    db = await createTestDatabase('central');
    // Enough rows that a full answer cannot hide in socket buffers.
    ({ macs, tokens } = await seedEnrolledDevices(db, {
      companies: 1,
      locationsPerCompany: 2,
      usersPerCompany: 20_000,
      devicesPerLocation: 2,
    }));
    api = await startCentral(db, {
      ADMIN_TOKEN: ADMIN,
      MAX_ANSWERS_PER_DEVICE: '2',
      RATE_LIMIT_PER_DEVICE_PER_MINUTE: '10000',
      SNAPSHOT_SLOW_WINDOW_SECONDS: '30',
    });
  });
  after(async () => {
    await api?.[Symbol.asyncDispose]();
    await db?.[Symbol.asyncDispose]();
  });

  const post = (path: string, body: unknown, token?: string) =>
    fetch(`${api.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(20_000),
    });
  const codeOf = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;

  /** A full answer whose body is never read: its socket stays open, the answer held. */
  const unreadAnswer = (mac: string) => rawSnapshotRequest(api.url, mac, tokens.get(mac), { read: false });

  it('bounds the answers one device holds at once: beyond MAX_ANSWERS_PER_DEVICE, 429 with Retry-After', async () => {
    const [mac, neighbour] = [macs[0]!, macs[2]!];
    const held = [await unreadAnswer(mac), await unreadAnswer(mac)];
    try {
      assert.deepEqual(
        held.map((h) => h.status),
        [200, 200],
      );
      const third = await post('/api/device-sync/request', { mac }, tokens.get(mac));
      assert.equal(third.status, 429);
      assert.ok(Number(third.headers.get('retry-after')) >= 1, 'Retry-After says when');
      assert.equal(await codeOf(third), 'RATE_LIMITED');
      // Another device is served meanwhile.
      const other = await post('/api/device-sync/request', { mac: neighbour }, tokens.get(neighbour));
      assert.equal(other.status, 200);
      await other.arrayBuffer();
    } finally {
      for (const h of held) h.close();
    }
    // Once the held answers closed, the device is served again.
    const again = await post('/api/device-sync/request', { mac }, tokens.get(mac));
    assert.equal(again.status, 200);
    await again.arrayBuffer();
  });

  it('refuses a piece run past 2^31 with 400 before authentication, and audits nothing broken', async () => {
    const res = await post('/api/device-sync/pieces', {
      mac: '02:00:00:00:00:01',
      manifestId: '01ARZ3NDEKTSV4RRFFQ69G5FAV',
      want: { users: [[0, 3_000_000_000]] },
    });
    assert.equal(res.status, 400);
    assert.equal(await codeOf(res), 'INVALID_INPUT');
    // A run within the bound but a large sum is counted without overflowing the audit row
    // (with a credential, or the answer is 401 before the manifest is looked up).
    const big = await post(
      '/api/device-sync/pieces',
      {
        mac: '02:00:00:00:00:01',
        manifestId: '01ARZ3NDEKTSV4RRFFQ69G5FAV',
        want: Object.fromEntries(['users', 'groups', 'areas', 'devices'].map((t) => [t, [[0, 16_000_000]]])),
      },
      'dbu1_any',
    );
    assert.equal(big.status, 404);
    assert.equal(await codeOf(big), 'MANIFEST_NOT_FOUND');
  });

  it('answers 401 for an enabled device that was never enrolled, as for a wrong credential', async () => {
    const { rows } = await db.pool.query<{ id: string }>('SELECT id FROM locations LIMIT 1');
    const mac = '02:aa:bb:cc:dd:01';
    await db.pool.query(
      `INSERT INTO devices (id, location_id, mac, name, is_enabled, created_at, updated_at) VALUES (gen_random_uuid(), $1, $2, 'never enrolled', true, now(), now())`,
      [rows[0]!.id, mac],
    );
    for (const path of ['/api/device-sync/request', '/api/device-sync/ack']) {
      const body =
        path === '/api/device-sync/request'
          ? { mac }
          : {
              mac,
              manifestId: '01ARZ3NDEKTSV4RRFFQ69G5FAV',
              status: 'Success',
              localCounts: {},
              localChecksums: {},
              durationMs: 1,
              error: null,
            };
      const res = await post(path, body, 'dbu1_anything-at-all');
      assert.ok(res.status === 401 || res.status === 404, `${path}: ${res.status}`);
      if (path === '/api/device-sync/request') {
        assert.equal(res.status, 401);
        assert.equal(await codeOf(res), 'UNAUTHENTICATED');
      }
    }
  });

  it("answers 403 MANIFEST_FORBIDDEN for a pieces fetch naming another device's manifest", async () => {
    const [mine, theirs] = [macs[0]!, macs[1]!];
    const answer = await post('/api/device-sync/request', { mac: theirs, pieces: true }, tokens.get(theirs));
    assert.equal(answer.status, 200);
    const manifestId = answer.headers.get('x-manifest-id')!;
    await answer.arrayBuffer();
    const res = await post(
      '/api/device-sync/pieces',
      { mac: mine, manifestId, want: { users: [[0, 0]] } },
      tokens.get(mine),
    );
    assert.equal(res.status, 403);
    assert.equal(await codeOf(res), 'MANIFEST_FORBIDDEN');
    // Without a credential that works for the caller: 401, as before.
    const stranger = await post(
      '/api/device-sync/pieces',
      { mac: mine, manifestId, want: { users: [[0, 0]] } },
      'dbu1_x',
    );
    assert.equal(stranger.status, 401);
  });

  it('refuses names PostgreSQL cannot store with 400 (API) or a numbered line (CSV), changing nothing', async () => {
    const { rows } = await db.pool.query<{ id: string }>('SELECT id FROM locations LIMIT 1');
    const before = await db.pool.query('SELECT count(*)::int AS n FROM devices');
    for (const name of ['nul\u0000here', 'lone \ud800 surrogate']) {
      const res = await fetch(`${api.url}/api/admin/devices/enroll`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
        body: JSON.stringify({ devices: [{ mac: '02:aa:bb:cc:dd:02', locationId: rows[0]!.id, name }] }),
      });
      assert.equal(res.status, 400, name);
      assert.equal(await codeOf(res), 'INVALID_INPUT');
    }
    const dir = await mkdtemp(join(tmpdir(), 'dbupdate-enroll-'));
    try {
      const file = join(dir, 'devices.csv');
      await writeFile(
        file,
        `mac,location_id,name\n02:aa:bb:cc:dd:03,${rows[0]!.id},fine\n02:aa:bb:cc:dd:04,${rows[0]!.id},bad\u0000name\n`,
      );
      const run = await dbupdate(['central', 'enroll', '--csv', file], { CENTRAL_DATABASE_URL: db.url });
      assert.equal(run.code, 1);
      assert.match(run.stderr, /INVALID_INPUT: .*line 3: name/s);
      assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const afterwards = await db.pool.query('SELECT count(*)::int AS n FROM devices');
    assert.equal(afterwards.rows[0].n, before.rows[0].n);
  });

  it('reports duplicate keys and numbers no double holds in an import by file and line, importing nothing', async () => {
    const { rows } = await db.pool.query<{ id: string }>('SELECT id FROM companies LIMIT 1');
    const company = rows[0]!.id;
    const dir = await mkdtemp(join(tmpdir(), 'dbupdate-import-'));
    const header = 'id,company_id,email,display_name,is_active,settings';
    const user = (n: number, settings = '{}') =>
      `00000000-0000-4000-8000-${String(n).padStart(12, '0')},${company},u${n}@example.com,User ${n},true,"${settings.replaceAll('"', '""')}"`;
    const attempt = async (lines: string[]) => {
      await writeFile(join(dir, 'users.csv'), [header, ...lines].join('\n') + '\n');
      return importDirectory(db.pool, dir).then(
        () => undefined,
        (err: unknown) => err,
      );
    };
    try {
      const count = async () =>
        (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM users')).rows[0]!.n;
      const users = await count();
      const dup = await attempt([user(1), user(2), user(1)]);
      assert.ok(isAppError(dup) && dup.code === 'INVALID_INPUT', String(dup));
      assert.match(
        (dup as Error).message,
        /users\.csv line 4: .*00000000-0000-4000-8000-000000000001.*line 2/,
      );
      const huge = await attempt([user(1), user(2, '{"a": 1e400}')]);
      assert.ok(isAppError(huge) && huge.code === 'INVALID_INPUT', String(huge));
      assert.match((huge as Error).message, /users\.csv line 3: .*settings/);
      assert.equal(await count(), users, 'nothing imported');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps serving when sent SIGHUP without TLS, and says there is nothing to reload', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['bin/dbupdate.ts', 'central', 'serve'], {
      env: {
        PATH: process.env.PATH ?? '',
        CENTRAL_DATABASE_URL: db.url,
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_FORMAT: 'json',
        LOG_LEVEL: 'info',
        MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 30_000;
      while (!/listening|server\.listen|Server listening/i.test(out) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      child.kill('SIGHUP');
      const early = await Promise.race([exited, new Promise((r) => setTimeout(() => r('alive'), 1500))]);
      assert.equal(early, 'alive', `exited on SIGHUP: ${out.slice(-500)}`);
      assert.match(out, /"event":"tls\.reload"[^\n]*nothing to reload/);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
