/**
 * A Jetson's wall clock may be far off (no battery-backed clock, NTP not answered yet): the
 * edge judges a manifest's lifetime by Central's clock (manifest-clock.ts). The edge runs as
 * the real CLI under libfaketime (Debian's `faketime`), its wall clock moved, its monotonic
 * clock left alone. Before the fix, +16 min failed every sync MANIFEST_EXPIRED, and −2 h
 * committed a replayed, already expired transfer as a success.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startCentral, seedOneScope, type RunningCentral } from './helpers/central.ts';
import { runProcess } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { TEST_KEYS } from './helpers/keys.ts';

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const missing = !existsSync(LIBFAKETIME);
if (missing && process.env.CI) throw new Error(`${LIBFAKETIME} is missing: apt-get install faketime`);

describe(
  'an edge whose clock is wrong',
  { skip: missing && 'libfaketime is not installed (apt-get install faketime)' },
  () => {
    let central: TestDatabase;
    let api: RunningCentral;
    let device: { mac: string; token: string };

    before(async () => {
      central = await createTestDatabase('central');
      device = await seedOneScope(central, 20);
      // The shortest lifetime there is, so a recorded answer can be replayed after it expired.
      api = await startCentral(central, { MANIFEST_TTL_SECONDS: '10' });
    });
    after(async () => {
      await api?.[Symbol.asyncDispose]();
      await central?.[Symbol.asyncDispose]();
    });

    /** `edge sync --json` with the wall clock moved by `offset` (libfaketime's form: +16m, -2h). */
    async function syncWithClock(edge: TestDatabase, centralUrl: string, offset: string) {
      const run = await runProcess(process.execPath, ['bin/dbupdate.ts', 'edge', 'sync', '--json'], {
        PATH: process.env.PATH ?? '',
        LD_PRELOAD: LIBFAKETIME,
        FAKETIME: offset,
        FAKETIME_DONT_FAKE_MONOTONIC: '1',
        EDGE_DATABASE_URL: edge.url,
        CENTRAL_URL: centralUrl,
        DEVICE_MAC: device.mac,
        DEVICE_TOKEN: device.token,
        MANIFEST_PUBLIC_KEYS: TEST_KEYS.publicKey,
        HTTP_RETRY_ATTEMPTS: '0',
      });
      const result = JSON.parse(run.stdout || '{}') as {
        status?: string;
        error?: { code: string; message: string };
      };
      return { ...run, result };
    }

    async function users(edge: TestDatabase): Promise<number> {
      const { rows } = await edge.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM users');
      return rows[0]!.n;
    }

    it('syncs 16 minutes ahead of Central, first and unchanged, and says its clock is off', async () => {
      const edge = await createTestDatabase('edge');
      try {
        const first = await syncWithClock(edge, api.url, '+16m');
        assert.equal(first.code, 0, first.stderr.slice(-2000));
        assert.equal(first.result.status, 'success');
        assert.ok((await users(edge)) >= 20);
        assert.match(first.stderr, /"event":"clock\.skew"[^\n]*16 min ahead of Central's/);
        const again = await syncWithClock(edge, api.url, '+16m');
        assert.equal(again.code, 0, again.stderr.slice(-2000));
        assert.equal(again.result.status, 'unchanged');
      } finally {
        await edge[Symbol.asyncDispose]();
      }
    });

    it('refuses, 2 hours behind, a full transfer replayed after it expired, and commits nothing', async () => {
      // The attacker records a real exchange of this device: request and full answer.
      const recorded = await fetch(`${api.url}/api/device-sync/request`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${device.token}`,
          'dbupdate-inline-pieces': '1',
        },
        body: JSON.stringify({ mac: device.mac, pieces: true, nonce: 'ab'.repeat(16) }),
      });
      assert.equal(recorded.status, 200);
      const headers = Object.fromEntries(
        [...recorded.headers].filter(
          ([k]) => k !== 'content-encoding' && k !== 'content-length' && k !== 'transfer-encoding',
        ),
      );
      const body = Buffer.from(await recorded.arrayBuffer());
      const manifestId = recorded.headers.get('x-manifest-id')!;
      await new Promise((r) => setTimeout(r, 11_000)); // past the manifest's 10 s
      // …and answers the edge's next request with it.
      const replay: Server = createServer((req, res) => {
        req.resume();
        req.on('end', () => res.writeHead(200, headers).end(body));
      });
      await new Promise<void>((r) => replay.listen(0, '127.0.0.1', r));
      const edge = await createTestDatabase('edge');
      try {
        const url = `http://127.0.0.1:${(replay.address() as AddressInfo).port}`;
        const run = await syncWithClock(edge, url, '-2h');
        assert.equal(run.code, 1, run.stdout);
        assert.equal(run.result.error?.code, 'MANIFEST_STALE', run.stdout);
        assert.match(run.result.error!.message, /answers another request/);
        assert.equal(await users(edge), 0, 'nothing committed');
        const ledger = await edge.pool.query<{ status: string; error_code: string }>(
          'SELECT status, error_code FROM edge_sync_log ORDER BY id DESC LIMIT 1',
        );
        assert.deepEqual(ledger.rows[0], { status: 'failed', error_code: 'MANIFEST_STALE' });
        const acks = await central.pool.query(
          `SELECT 1 FROM sync_acknowledgements WHERE manifest_id = $1 AND result = 'Success'`,
          [manifestId],
        );
        assert.equal(acks.rowCount, 0, 'Central stored no Success ack for the replayed manifest');
      } finally {
        replay.close();
        await edge[Symbol.asyncDispose]();
      }
    });
  },
);
