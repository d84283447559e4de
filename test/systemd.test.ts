/**
 * The native install (issue 35): systemd units for Central, the edge and the daily audit
 * prune, checked by `systemd-analyze verify` with their paths pointed at this checkout; and
 * every secret setting read from a file (`<NAME>_FILE`), as the units pass them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { loadCentralConfig } from '../src/central/config.ts';
import { loadEdgeConfig } from '../src/edge/config.ts';
import { TEST_KEYS } from './helpers/keys.ts';

const UNITS = 'deploy/systemd';
const analyze = spawnSync('systemd-analyze', ['--version']).error === undefined;
if (!analyze && process.env.CI) throw new Error('systemd-analyze is missing: apt-get install systemd');

describe('native installs', () => {
  it(
    'ships units that systemd-analyze verifies without a word',
    { skip: !analyze && 'no systemd-analyze' },
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'dbupdate-units-'));
      try {
        const files = readdirSync(UNITS).filter((f) => /\.(service|timer)$/.test(f));
        assert.deepEqual(files.sort(), [
          'dbupdate-central.service',
          'dbupdate-edge.service',
          'dbupdate-prune-audit.service',
          'dbupdate-prune-audit.timer',
        ]);
        for (const f of files)
          writeFileSync(
            join(dir, f),
            readFileSync(join(UNITS, f), 'utf8').replaceAll('/opt/dbupdate', resolve('.')),
          );
        const run = spawnSync('systemd-analyze', ['verify', '--man=no', ...files], {
          cwd: dir,
          encoding: 'utf8',
        });
        assert.equal(`${run.stdout}${run.stderr}`, '');
        assert.equal(run.status, 0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('reads every secret the units pass from its *_FILE, and refuses both or an unreadable file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbupdate-secrets-'));
    try {
      const file = (name: string, text: string) => {
        writeFileSync(join(dir, name), `${text}\n`);
        return join(dir, name);
      };
      const central = loadCentralConfig({
        CENTRAL_DATABASE_URL_FILE: file('db', 'postgres://api:secret@db/central'),
        MANIFEST_SIGNING_KEY_FILE: file('key', TEST_KEYS.privateKey),
        ADMIN_TOKEN_FILE: file('admin', 'an-admin-token-from-a-file-0123'),
      });
      assert.equal(central.CENTRAL_DATABASE_URL, 'postgres://api:secret@db/central');
      assert.equal(central.ADMIN_TOKEN, 'an-admin-token-from-a-file-0123');
      const edge = loadEdgeConfig({
        EDGE_DATABASE_URL_FILE: file('edge-db', 'postgres://edge@127.0.0.1/edge'),
        DEVICE_TOKEN_FILE: file('token', 'dbu1_a-device-token'),
        CENTRAL_URL: 'https://central.example',
        DEVICE_MAC: '48:b0:2d:e9:c3:b7',
        MANIFEST_PUBLIC_KEYS: TEST_KEYS.publicKey,
      });
      assert.equal(edge.DEVICE_TOKEN, 'dbu1_a-device-token');
      assert.throws(
        () =>
          loadCentralConfig({
            MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey,
            CENTRAL_DATABASE_URL: 'postgres://a@b/c',
            MANIFEST_SIGNING_KEY_FILE: join(dir, 'key'),
          }),
        {
          code: 'CONFIG_INVALID',
          message: /MANIFEST_SIGNING_KEY and MANIFEST_SIGNING_KEY_FILE are both set/,
        },
      );
      assert.throws(
        () =>
          loadCentralConfig({
            CENTRAL_DATABASE_URL_FILE: join(dir, 'missing'),
            MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey,
          }),
        { code: 'CONFIG_INVALID', message: /CENTRAL_DATABASE_URL_FILE cannot be read: ENOENT/ },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
