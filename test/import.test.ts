/**
 * Real data, not fake: `central import --dir` through the real CLI loads an operator's
 * CSV export into an empty Central, a device row it created can then be enrolled, the
 * same export again changes nothing, one edited user changes one row, and a bad line
 * is reported by file and line with nothing changed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TABLE_NAMES } from '../src/contract/tables.ts';
import { dbupdate } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

const CO = '11111111-1111-4111-8111-111111111111';
const LOC = '22222222-2222-4222-8222-222222222222';
const GRP = '33333333-3333-4333-8333-333333333333';
const U1 = '44444444-4444-4444-8444-444444444441';
const U2 = '44444444-4444-4444-8444-444444444442';
const AREA = '55555555-5555-4555-8555-555555555555';
const DEV = '66666666-6666-4666-8666-666666666666';
const MAC = '02:00:00:aa:bb:01';

const EXPORT: Record<string, string> = {
  // As a spreadsheet saves it: a byte-order mark first, CRLF line ends.
  'companies.csv': `\uFEFFid,name\r\n${CO},Acme Logistics\r\n`,
  'locations.csv': `id,company_id,name,address,timezone\n${LOC},${CO},Depot North,"1 Quay St, Leeds",Europe/London\n`,
  'groups.csv': `id,company_id,name,description\n${GRP},${CO},Drivers,\n`,
  'location_groups.csv': `location_id,group_id\n${LOC},${GRP}\n`,
  'users.csv':
    'id,company_id,email,display_name,phone,employee_number,is_active,settings\n' +
    `${U1},${CO},ann@acme.test,Ann Lee,,1001,true,"{""shift"": ""early""}"\n` +
    `${U2},${CO},bo@acme.test,Bo Park,+44 20 7946 0000,1002,false,{}\n`,
  'group_users.csv': `group_id,user_id\n${GRP},${U1}\n${GRP},${U2}\n`,
  'areas.csv': `id,location_id,name,floor,size_sqm\n${AREA},${LOC},Dock 1,0,120.50\n`,
  'devices.csv': `id,location_id,mac,name\n${DEV},${LOC},${MAC},Gate camera\n`,
};

describe('central import', () => {
  let db: TestDatabase;
  let dir: string;
  const cli = (...args: string[]) => dbupdate(['central', ...args], { CENTRAL_DATABASE_URL: db.url });
  const write = (files: Record<string, string>) =>
    Promise.all(Object.entries(files).map(([name, text]) => writeFile(join(dir, name), text)));
  /** Every data table's rows, as text, to compare whole states. */
  const state = async () => {
    const out: Record<string, string[]> = {};
    for (const table of TABLE_NAMES) {
      const { rows } = await db.pool.query<{ r: string }>(`SELECT t::text AS r FROM "${table}" t ORDER BY 1`);
      out[table] = rows.map((x) => x.r);
    }
    return out;
  };

  before(async () => {
    db = await createTestDatabase('central');
    dir = await mkdtemp(join(tmpdir(), 'dbupdate-import-'));
  });
  after(async () => {
    await db[Symbol.asyncDispose]();
    await rm(dir, { recursive: true, force: true });
  });

  it('loads every table of an export, parents first, and the device can be enrolled', async () => {
    await write(EXPORT);
    const run = await cli('import', '--dir', dir);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as Record<string, { inserted: number; updated: number }>;
    assert.deepEqual(result.users, { inserted: 2, updated: 0 });
    assert.deepEqual(result.group_users, { inserted: 2, updated: 0 });
    const s = await state();
    assert.equal(Object.values(s).flat().length, 10);
    const user = await db.pool.query(
      `SELECT phone, employee_number::int AS n, is_active, settings FROM users WHERE id = $1`,
      [U1],
    );
    assert.deepEqual(user.rows[0], { phone: null, n: 1001, is_active: true, settings: { shift: 'early' } });
    const device = await db.pool.query(
      `SELECT mac::text, is_enabled, created_at IS NOT NULL AS stamped FROM devices`,
    );
    assert.deepEqual(device.rows, [{ mac: MAC, is_enabled: true, stamped: true }]);
    // `enroll` finds the imported device row: no "create it in central first".
    const enroll = await cli('enroll', '--mac', MAC);
    assert.equal(enroll.code, 0, enroll.stderr);
    assert.match(enroll.stderr, new RegExp(`^enrolled device ${DEV}`, 'm'));
  });

  it('changes nothing when the same export comes again, and one row for one edit', async () => {
    const before = await state();
    const versions = await db.pool.query('SELECT * FROM data_versions ORDER BY 1');
    const again = await cli('import', '--dir', dir);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(
      Object.values(JSON.parse(again.stdout) as Record<string, { inserted: number; updated: number }>).every(
        (n) => n.inserted + n.updated === 0,
      ),
    );
    assert.deepEqual(await state(), before, 'not even updated_at moved');
    assert.deepEqual((await db.pool.query('SELECT * FROM data_versions ORDER BY 1')).rows, versions.rows);

    await write({ 'users.csv': EXPORT['users.csv']!.replace('Bo Park', 'Bo Park-Lee') });
    const edit = await cli('import', '--dir', dir);
    assert.equal(edit.code, 0, edit.stderr);
    assert.deepEqual((JSON.parse(edit.stdout) as Record<string, unknown>).users, { inserted: 0, updated: 1 });
    const { rows } = await db.pool.query(
      `SELECT display_name, updated_at > created_at AS touched FROM users ORDER BY id`,
    );
    assert.deepEqual(rows, [
      { display_name: 'Ann Lee', touched: false },
      { display_name: 'Bo Park-Lee', touched: true },
    ]);
  });

  it('names the file and line of a bad row, and changes nothing at all', async () => {
    const before = await state();
    const cases: [Record<string, string>, RegExp][] = [
      [
        {
          'companies.csv': `id,name\n${CO},Acme Renamed\n`,
          'users.csv':
            EXPORT['users.csv']! +
            `${U2.replace('442', '443')},${CO},cy@acme.test,Cy,,not-a-number,true,{}\n`,
        },
        /users\.csv line 4: invalid input syntax for type bigint/,
      ],
      [
        { 'areas.csv': `id,location_id,name\n${AREA.replace('555', '556')},${GRP},Nowhere\n` },
        /areas\.csv line 2: .*foreign key.*\(Key \(location_id\)/,
      ],
      [{ 'devices.csv': 'id,location_id,mac,colour\n' }, /devices\.csv line 1: .*unknown: colour/],
      [{ 'devices.csv': 'location_id,mac\n' }, /devices\.csv line 1: the key column id is missing/],
      [{ 'people.csv': 'id\n' }, /people\.csv: not a table/],
    ];
    for (const [files, message] of cases) {
      await rm(dir, { recursive: true, force: true });
      dir = await mkdtemp(join(tmpdir(), 'dbupdate-import-'));
      await write({ ...EXPORT, ...files });
      const run = await cli('import', '--dir', dir);
      assert.equal(run.code, 1, `${message}: ${run.stdout}`);
      assert.match(run.stderr, /INVALID_INPUT/);
      assert.match(run.stderr, message);
      assert.deepEqual(await state(), before, `${message}: nothing changed`);
    }
  });
});
