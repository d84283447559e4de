/**
 * The command line as a newcomer meets it: help that runs nothing, a version, and one
 * line with a documented code (never a stack) for every start-up failure we can make.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ERROR_CODES } from '../src/platform/errors.ts';
import { databaseUrl } from '../src/platform/db.ts';
import { startCentral, seedOneScope, type RunningCentral } from './helpers/central.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { TEST_KEYS } from './helpers/keys.ts';
import { TABLES } from '../src/contract/tables.ts';
import { dbupdate, runProcess, type Run } from './helpers/cli.ts';

/** The process failed with exactly one line on stderr, naming a documented code. */
function assertOneLine(run: Run, code: keyof typeof ERROR_CODES, pattern: RegExp): void {
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0]!, new RegExp(`^dbupdate: ${code}: `));
  assert.match(lines[0]!, pattern);
  assert.notEqual(run.code, 0);
}

const tableExists = async (db: TestDatabase, name: string) =>
  (await db.pool.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [name])).rows[0]!.t !==
  null;

describe('the command line', () => {
  let empty: TestDatabase;

  before(async () => {
    empty = await createTestDatabase('empty');
  });
  after(async () => {
    await empty[Symbol.asyncDispose]();
  });

  it('answers --help on every command without running it', async () => {
    const usage = await dbupdate(['--help']);
    assert.equal(usage.code, 0);
    const commands = [...usage.stdout.matchAll(/^ {2}((?:central|edge) [a-z-]+|demo)\b/gm)].map((m) => m[1]!);
    assert.ok(commands.length >= 11, usage.stdout);
    for (const command of commands) {
      const run = await dbupdate([...command.split(' '), '--help'], { CENTRAL_DATABASE_URL: empty.url });
      assert.equal(run.code, 0, `${command}: ${run.stderr}`);
      assert.match(run.stdout, new RegExp(command.replace(' ', ' ')), command);
    }
    // `central migrate --help` must not have migrated the database it was pointed at.
    assert.equal(await tableExists(empty, 'dbupdate_migrations'), false);
  });

  it('lists the settings a command reads in its --help, required or with their default', async () => {
    const serve = await dbupdate(['central', 'serve', '--help']);
    assert.equal(serve.code, 0, serve.stderr);
    assert.match(serve.stdout, /^settings of central commands \(environment\):$/m);
    assert.match(serve.stdout, /^ {2}CENTRAL_DATABASE_URL +required; or CENTRAL_DATABASE_URL_FILE$/m);
    assert.match(serve.stdout, /^ {2}PORT +default 8080$/m);
    const sync = await dbupdate(['edge', 'sync', '--help']);
    assert.match(sync.stdout, /^ {2}DEVICE_MAC +required$/m);
    assert.match(sync.stdout, /^ {2}DEVICE_TOKEN +optional; or DEVICE_TOKEN_FILE$/m);
    const migrate = await dbupdate(['edge', 'migrate', '--help']);
    assert.match(migrate.stdout, /^ {2}EDGE_DATABASE_URL +required/m);
    assert.doesNotMatch(migrate.stdout, /DEVICE_MAC/, 'only what the command reads');
  });

  it('prints its version', async () => {
    const run = await dbupdate(['--version']);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^dbupdate \d+\.\d+\.\d+ \(node 24\./);
  });

  it('names the accepted values of a setting given a wrong one', async () => {
    const run = await dbupdate(['central', 'migrate'], {
      CENTRAL_DATABASE_URL: empty.url,
      LOG_LEVEL: 'verbose',
    });
    assertOneLine(run, 'CONFIG_INVALID', /LOG_LEVEL .*must be one of fatal, error, warn, info, debug/);
  });

  it('says where a signing key comes from when given something else', async () => {
    const run = await dbupdate(['central', 'serve'], {
      CENTRAL_DATABASE_URL: empty.url,
      MANIFEST_SIGNING_KEY: 'this-is-not-an-ed25519-key-but-is-long-enough',
    });
    assertOneLine(run, 'CONFIG_INVALID', /MANIFEST_SIGNING_KEY.*dbupdate central keygen/);
  });

  it("refuses the example files' placeholders", async () => {
    const example = Object.fromEntries(
      readFileSync('deploy/central/.env.example', 'utf8')
        .split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    const run = await dbupdate(['central', 'serve'], {
      CENTRAL_DATABASE_URL: empty.url,
      MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey,
      ADMIN_TOKEN: example.ADMIN_TOKEN!,
    });
    assertOneLine(run, 'CONFIG_INVALID', /ADMIN_TOKEN still holds the example placeholder/);
  });

  describe('database failures, one line each', () => {
    const base = () => new URL(process.env.TEST_DATABASE_URL!);
    const cases: [string, () => Promise<string>, keyof typeof ERROR_CODES, RegExp][] = [
      [
        'connection refused',
        async () => {
          const port = await closedPort();
          return `postgres://u:p@127.0.0.1:${port}/x`;
        },
        'DATABASE_UNAVAILABLE',
        /ECONNREFUSED.*is PostgreSQL running/,
      ],
      [
        'unknown host',
        async () => 'postgres://u:p@no-such-host.invalid:5432/x',
        'DATABASE_UNAVAILABLE',
        /unknown host/,
      ],
      [
        'wrong password',
        async () => {
          const u = base();
          u.password = 'not-the-password';
          return u.toString();
        },
        'DATABASE_ACCESS_DENIED',
        /password authentication failed.*check the user and password/,
      ],
      [
        'missing database',
        async () => databaseUrl(base().toString(), 'no_such_database'),
        'DATABASE_ACCESS_DENIED',
        /does not exist: create the database/,
      ],
    ];
    for (const [name, url, code, pattern] of cases) {
      it(name, async () => {
        assertOneLine(
          await dbupdate(['central', 'migrate'], { CENTRAL_DATABASE_URL: await url() }),
          code,
          pattern,
        );
      });
    }

    it('permission denied', async () => {
      const role = `cli_nobody_${process.pid}`;
      await empty.pool.query(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
      try {
        await empty.pool.query(`REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
        const u = new URL(empty.url);
        u.username = role;
        u.password = 'pw';
        const run = await dbupdate(['central', 'migrate'], { CENTRAL_DATABASE_URL: u.toString() });
        assertOneLine(run, 'DATABASE_ACCESS_DENIED', /permission denied.*grant/);
      } finally {
        await empty.pool.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
      }
    });
  });

  it('says which port is taken when serve cannot listen', async () => {
    await using central = await createTestDatabase('central');
    const busy = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => busy.once('listening', r));
    try {
      const port = (busy.address() as { port: number }).port;
      const run = await dbupdate(['central', 'serve'], {
        CENTRAL_DATABASE_URL: central.url,
        MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey,
        HOST: '127.0.0.1',
        PORT: String(port),
        LOG_LEVEL: 'silent',
      });
      assertOneLine(run, 'PORT_IN_USE', new RegExp(`127\\.0\\.0\\.1:${port}: it is in use; set PORT`));
    } finally {
      busy.close();
    }
  });

  describe('edge sync', () => {
    let central: TestDatabase;
    let edge: TestDatabase;
    let api: RunningCentral;
    let env: Record<string, string>;

    before(async () => {
      central = await createTestDatabase('central');
      edge = await createTestDatabase('edge');
      const { mac, token } = await seedOneScope(central, 20);
      api = await startCentral(central);
      env = {
        EDGE_DATABASE_URL: edge.url,
        CENTRAL_URL: api.url,
        DEVICE_MAC: mac,
        DEVICE_TOKEN: token,
        MANIFEST_PUBLIC_KEYS: TEST_KEYS.publicKey,
        HTTP_RETRY_ATTEMPTS: '1',
      };
    });
    after(async () => {
      await api[Symbol.asyncDispose]();
      await central[Symbol.asyncDispose]();
      await edge[Symbol.asyncDispose]();
    });

    it('writes its result alone to stdout and its logs to stderr', async () => {
      const run = await dbupdate(['edge', 'sync'], env);
      assert.equal(run.code, 0, run.stderr);
      const result = JSON.parse(run.stdout) as { status: string; rowsLoaded: number };
      assert.equal(result.status, 'success');
      assert.ok(result.rowsLoaded > 20);
      const events = run.stderr
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { event?: string }).event);
      assert.ok(events.includes('sync.load.table.start'), run.stderr);
      assert.doesNotMatch(run.stderr, /\r| rows +\d+ %/, 'no progress lines into a pipe');
    });

    it('shows the load of each table on a terminal, rows and bytes', async (t) => {
      if (spawnSync('script', ['--version']).status !== 0) return t.skip('no `script` to make a terminal');
      const assignments = Object.entries(env).map(([k, v]) => `${k}='${v}'`);
      const command = `env ${assignments.join(' ')} '${process.execPath}' bin/dbupdate.ts edge sync --full`;
      const run = await runProcess('script', ['-qec', command, '/dev/null']);
      assert.equal(run.code, 0, run.stdout);
      // What stays on the screen: the last state of every line drawn with \r.
      const screen = run.stdout
        .split(/\r?\n/)
        .map((line) => line.split('\r').at(-1)!.replaceAll('\x1b[2K', ''));
      for (const table of TABLES) {
        const line = screen.find((l) => new RegExp(`^  ${table.name} +[\\d,]+ / `).test(l));
        assert.ok(line, `no progress line for ${table.name} in:\n${screen.join('\n')}`);
        const m = /([\d,]+) \/ ([\d,]+) +rows +100 % +([\d.]+) MB$/.exec(line);
        assert.ok(m && m[1] === m[2], line);
      }
      assert.match(run.stdout, /^sync success in \d+ ms/m);
    });

    it('says in one line on a terminal that the credential was refused, and what to check', async (t) => {
      if (spawnSync('script', ['--version']).status !== 0) return t.skip('no `script` to make a terminal');
      const assignments = Object.entries({ ...env, DEVICE_TOKEN: 'not-the-credential' }).map(
        ([k, v]) => `${k}='${v}'`,
      );
      const command = `env ${assignments.join(' ')} '${process.execPath}' bin/dbupdate.ts edge sync`;
      // Asynchronously: Central answers from this very process.
      const run = await runProcess('script', ['-qec', command, '/dev/null']);
      const lines = run.stdout.trim().split(/\r?\n/);
      assert.equal(run.code, 1, run.stdout);
      assert.equal(lines.length, 2, run.stdout);
      assert.match(lines[0]!, /^sync failed in \d+ ms/);
      assert.match(lines[1]!, /^dbupdate: CENTRAL_REFUSED: .*401 UNAUTHENTICATED: check DEVICE_TOKEN/);
    });
  });
});

async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}
