/**
 * The command line for scripts and people (issue 35, finding 5, in part): a misspelled command
 * gets a suggestion, the fleet list pages with --after and shows state and name, and the
 * device actions answer --json. Each failed on the code before.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { seedEnrolledDevices } from './helpers/central.ts';
import { dbupdate } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

describe('the operator command line', () => {
  let db: TestDatabase;
  let macs: string[];
  const cli = (...args: string[]) => dbupdate(['central', ...args], { CENTRAL_DATABASE_URL: db.url });

  before(async () => {
    db = await createTestDatabase('central');
    ({ macs } = await seedEnrolledDevices(db, {
      companies: 1,
      locationsPerCompany: 2,
      devicesPerLocation: 2,
    }));
  });
  after(async () => db?.[Symbol.asyncDispose]());

  it('suggests the command a typo meant', async () => {
    const run = await cli('enrol', '--mac', macs[0]!);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /unknown command: central enrol; did you mean `central enroll`\?/);
  });

  it('lists the fleet with state and name, and pages with --after', async () => {
    const all = await cli('devices', 'list');
    assert.equal(all.code, 0, all.stderr);
    const [header, ...lines] = all.stdout.trim().split('\n');
    assert.deepEqual(header!.split('\t').slice(0, 3), ['MAC', 'STATE', 'NAME']);
    assert.equal(lines.length, macs.length);
    assert.ok(lines.every((l) => l.split('\t')[1] === 'never synced'));
    const next = await cli('devices', 'list', '--after', macs[1]!, '--json');
    assert.deepEqual(
      next.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { mac: string }).mac),
      [...macs].sort().filter((m) => m > macs[1]!),
    );
  });

  it('answers a device action in JSON for scripts', async () => {
    const run = await cli('devices', 'disable', '--mac', macs[0]!, '--json');
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(
      { ...(JSON.parse(run.stdout) as Record<string, unknown>), deviceId: undefined },
      { mac: macs[0], deviceId: undefined, action: 'disable', changed: true },
    );
  });
});
