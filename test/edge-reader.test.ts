/**
 * The read-only role of a Jetson's other services: made by deploy/edge/reader-role.sql,
 * granted the data tables by `dbupdate edge migrate` (and the service at start) through
 * EDGE_READER_ROLE; it reads what a sync loaded, hears the data-changed NOTIFY, and can
 * neither write nor read the ledger. A role that does not exist stops the start, named.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { TABLES } from '../src/contract/tables.ts';
import { DATA_CHANGED_CHANNEL, type DataChanged } from '../src/edge/repo/news.ts';
import { seedOneScope, startCentral, type RunningCentral } from './helpers/central.ts';
import { dbupdate } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { testSyncer } from './helpers/edge.ts';

// The stack's role name, made unique: roles are the whole server's, and test files run side by side.
const ROLE = `t_reader_${process.pid}`;
const PASSWORD = 'reader-password-for-tests';

describe('the edge reader role', () => {
  let central: TestDatabase;
  let edge: TestDatabase;
  let api: RunningCentral;
  let reader: pg.Client;
  let mac: string;
  let token: string;

  before(async () => {
    central = await createTestDatabase('central');
    edge = await createTestDatabase('edge');
    ({ mac, token } = await seedOneScope(central, 30));
    api = await startCentral(central);
    // The file as the stack's first start runs it, with psql's variable filled in.
    const sql = await readFile('deploy/edge/reader-role.sql', 'utf8');
    await edge.pool.query(
      sql.replace(":'reader_password'", `'${PASSWORD}'`).replaceAll('dbupdate_reader', ROLE),
    );
  });
  after(async () => {
    await reader?.end();
    await api?.[Symbol.asyncDispose]();
    await edge?.[Symbol.asyncDispose]();
    await central?.pool.query(`DROP ROLE IF EXISTS ${ROLE}`);
    await central?.[Symbol.asyncDispose]();
  });

  it('is granted the data tables by edge migrate, and reads what a sync loaded', async () => {
    const migrate = await dbupdate(['edge', 'migrate'], {
      EDGE_DATABASE_URL: edge.url,
      EDGE_READER_ROLE: ROLE,
    });
    assert.equal(migrate.code, 0, migrate.stderr);
    const url = new URL(edge.url);
    url.username = ROLE;
    url.password = PASSWORD;
    reader = new pg.Client({ connectionString: url.href });
    await reader.connect();
    await reader.query(`LISTEN ${DATA_CHANGED_CHANNEL}`);
    const heard = new Promise<pg.Notification>((resolve) => reader.once('notification', resolve));

    const result = await testSyncer(edge, api.url, mac, token).run('manual');
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    for (const def of TABLES) {
      const { rows } = await reader.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${def.name}"`);
      assert.equal(rows[0]!.n, result.tables.find((t) => t.name === def.name)!.rowCount, def.name);
    }
    const notice = await heard;
    assert.equal(notice.channel, DATA_CHANGED_CHANNEL);
    // A listener checks a notice against dbupdate_news, which only the service writes.
    const news = JSON.parse(notice.payload!) as DataChanged;
    const { rows } = await reader.query<{ tables: string[] }>(
      'SELECT tables FROM dbupdate_news WHERE manifest_id = $1',
      [news.manifestId],
    );
    assert.deepEqual(rows[0]?.tables, news.tables);
  });

  it('can send a forged notice, but cannot make it check out', async () => {
    // Any login may NOTIFY any channel: the reader role forges one.
    await reader.query('SET default_transaction_read_only = off');
    const forged = {
      manifestId: '01ARZ3NDEKTSV4RRFFQ69G5FAV',
      tables: ['users'],
      committedAt: new Date().toISOString(),
    };
    await reader.query('SELECT pg_notify($1, $2)', [DATA_CHANGED_CHANNEL, JSON.stringify(forged)]);
    const { rows } = await reader.query('SELECT 1 FROM dbupdate_news WHERE manifest_id = $1', [
      forged.manifestId,
    ]);
    assert.equal(rows.length, 0, 'a forged notice names no row of dbupdate_news');
    const denied = await reader
      .query(`INSERT INTO dbupdate_news VALUES ($1, '{users}', now())`, [forged.manifestId])
      .then(
        () => 'ok',
        (err: { code: string }) => err.code,
      );
    assert.equal(denied, '42501', 'nor can it write the news');
    await reader.query('RESET default_transaction_read_only');
  });

  it('writes nothing and reads no ledger, even with read-only turned off', async () => {
    const code = (sql: string) =>
      reader.query(sql).then(
        () => 'ok',
        (err: { code: string }) => err.code,
      );
    assert.equal(await code('DELETE FROM users'), '25006', 'read-only by default');
    await reader.query('SET default_transaction_read_only = off');
    assert.equal(await code('DELETE FROM users'), '42501');
    assert.equal(await code(`UPDATE companies SET name = 'x'`), '42501');
    assert.equal(await code('SELECT count(*) FROM edge_sync_log'), '42501');
    assert.equal(await code('SELECT count(*) FROM edge_pending_acks'), '42501');
  });

  it('stops the start when the role does not exist, and says which', async () => {
    const run = await dbupdate(['edge', 'migrate'], {
      EDGE_DATABASE_URL: edge.url,
      EDGE_READER_ROLE: 'no_such_reader',
    });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /CONFIG_INVALID: EDGE_READER_ROLE names no_such_reader, which is not a role/);
  });
});
