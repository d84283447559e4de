/**
 * README "Running against existing PostgreSQL servers", run as pasted (issue 35): the block
 * between its native-walkthrough markers, on Debian's PostgreSQL 15, with only the hosts and
 * ports replaced by this machine's and `npx dbupdate` by this checkout's command. Central over
 * HTTPS as the least-privilege API role, the edge pinned to the CA, as the owner of its tables.
 * Before, the snippet stopped at CONFIG_INVALID (plain http:// to another host) and never made
 * the edge's database or role.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { it } from 'node:test';
import pg from 'pg';
import { missingPostgres, startPostgres } from '../scripts/lib/engines.ts';
import { freePort } from '../src/platform/embedded.ts';

const missing = missingPostgres();
if (missing && process.env.CI) throw new Error(`Debian's PostgreSQL 15 is missing: ${missing}`);

/** The README's block, with this machine's hosts, ports and command in place of the examples. */
function walkthrough(pgPort: number, centralPort: number): string {
  const readme = readFileSync('README.md', 'utf8');
  const block = /<!-- native-walkthrough -->\s*```sh\n([\s\S]*?)```\s*<!-- \/native-walkthrough -->/.exec(
    readme,
  );
  assert.ok(block, 'the README holds the walk-through between its markers');
  return block[1]!
    .replaceAll('-h central-db -p 5432', `-h 127.0.0.1 -p ${pgPort}`)
    .replaceAll('-h localhost -p 5432', `-h 127.0.0.1 -p ${pgPort}`)
    .replaceAll('central-db:5432', `127.0.0.1:${pgPort}`)
    .replaceAll('localhost:5432', `127.0.0.1:${pgPort}`)
    .replaceAll('central-host:8443', `localhost:${centralPort}`)
    .replaceAll('central-host', 'localhost')
    .replaceAll('PORT=8443', `PORT=${centralPort}`)
    .replaceAll('npx dbupdate', `'${process.execPath}' '${resolve('bin/dbupdate.ts')}'`)
    .replaceAll('deploy/central/api-role.sql', resolve('deploy/central/api-role.sql'));
}

it(
  'runs the README native walk-through as pasted, and the edge holds its data',
  { skip: missing, timeout: 240_000 },
  async () => {
    const pg15 = await startPostgres();
    const dir = mkdtempSync(join(tmpdir(), 'dbupdate-walkthrough-'));
    try {
      const script = walkthrough(pg15.node.port, await freePort());
      // Central runs in the background for the edge's sync; it is stopped when the block ends.
      const child = spawn(
        'bash',
        ['-euo', 'pipefail', '-c', `trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n${script}`],
        {
          cwd: dir,
          env: { PATH: process.env.PATH ?? '', HOME: dir, LOG_LEVEL: 'warn' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const code = await new Promise<number | null>((r) => child.on('exit', r));
      assert.equal(code, 0, out.slice(-3000));
      const edge = new pg.Client({
        connectionString: `postgres://postgres@127.0.0.1:${pg15.node.port}/edge`,
      });
      await edge.connect();
      try {
        const ledger = await edge.query<{ status: string }>(
          'SELECT status FROM edge_sync_log ORDER BY id DESC LIMIT 1',
        );
        assert.deepEqual(ledger.rows, [{ status: 'success' }]);
        const owner = await edge.query<{ owner: string }>(
          `SELECT DISTINCT tableowner AS owner FROM pg_tables WHERE tablename IN ('users', 'devices', 'edge_sync_log')`,
        );
        assert.deepEqual(owner.rows, [{ owner: 'dbupdate_edge' }]);
        const users = await edge.query<{ n: number }>('SELECT count(*)::int AS n FROM users');
        assert.ok(users.rows[0]!.n > 0);
      } finally {
        await edge.end();
      }
    } finally {
      pg15.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
