/** Every error code is documented, with its status, in docs/errors.md. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { it } from 'node:test';
import { ERROR_CODES } from '../src/platform/errors.ts';
import { loadCentralConfig } from '../src/central/config.ts';
import { TEST_KEYS } from './helpers/keys.ts';

it('documents every error code with its status', async () => {
  const doc = await readFile(new URL('../docs/errors.md', import.meta.url), 'utf8');
  for (const [code, { status }] of Object.entries(ERROR_CODES)) {
    assert.match(doc, new RegExp(`\\|\\s*\`${code}\`\\s*\\|\\s*${status}\\s*\\|`), code);
  }
});

it('stops at start with one line naming a missing or invalid setting', () => {
  assert.throws(() => loadCentralConfig({}), {
    code: 'CONFIG_INVALID',
    message: /^setting CENTRAL_DATABASE_URL is missing/,
  });
  assert.throws(() => loadCentralConfig({ CENTRAL_DATABASE_URL: 'postgres://h/db' }), {
    message: /^setting MANIFEST_SIGNING_KEY is missing/,
  });
  const base = { CENTRAL_DATABASE_URL: 'postgres://h/db', MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey };
  assert.throws(() => loadCentralConfig({ ...base, MANIFEST_SIGNING_KEY: TEST_KEYS.publicKey }), {
    message: /^setting MANIFEST_SIGNING_KEY is invalid/,
  });
  assert.throws(() => loadCentralConfig({ ...base, PORT: 'eighty' }), {
    message: /^setting PORT is invalid/,
  });
  assert.throws(() => loadCentralConfig({ ...base, LOG_LEVEL: 'loud' }), {
    message: /^setting LOG_LEVEL is invalid/,
  });
  assert.throws(() => loadCentralConfig({ ...base, MANIFEST_TTL_SECONDS: '1' }), {
    message: /MANIFEST_TTL_SECONDS/,
  });
  const config = loadCentralConfig({ ...base, PORT: '9000' });
  assert.equal(config.PORT, 9000);
  assert.equal(config.MANIFEST_TTL_SECONDS, 900);
  assert.ok(Object.isFrozen(config));
});
