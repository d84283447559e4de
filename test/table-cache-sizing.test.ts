/** TABLE_CACHE_MB=auto (src/central/sync/memory/sizing.ts), row by row of its table, without a database. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadCentralConfig } from '../src/central/config.ts';
import { sizeTableCache } from '../src/central/sync/memory/sizing.ts';
import { TEST_KEYS } from './helpers/keys.ts';

const GIB = 2 ** 30;

describe('table cache sizing', () => {
  it('keeps a number the operator set', () => {
    assert.deepEqual(sizeTableCache(256, 10_000, 24 * GIB), { mb: 256, why: 'TABLE_CACHE_MB as set' });
    assert.equal(sizeTableCache(0, 10_000, 24 * GIB).mb, 0);
  });

  it('gives 64 KB per location, the fleet bench’s 640 MB at 10,000 locations', () => {
    const sized = sizeTableCache('auto', 10_000, 24 * GIB);
    assert.equal(sized.mb, 625);
    assert.match(sized.why, /^TABLE_CACHE_MB=auto: 10000 locations × 64 KB \(24576 MB given\)$/);
  });

  it('never goes under 64 MB, nor over a quarter of the memory given', () => {
    assert.equal(sizeTableCache('auto', 3, 24 * GIB).mb, 64);
    const capped = sizeTableCache('auto', 100_000, 2 * GIB);
    assert.equal(capped.mb, 512);
    assert.match(capped.why, /capped at a quarter of the 2048 MB given/);
  });

  it('reads auto or a number from the setting, and refuses anything else naming it', () => {
    const env = { CENTRAL_DATABASE_URL: 'postgres://x/y', MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey };
    assert.equal(loadCentralConfig(env).tableCacheMb, 'auto');
    assert.equal(loadCentralConfig({ ...env, TABLE_CACHE_MB: '640' }).tableCacheMb, 640);
    assert.throws(() => loadCentralConfig({ ...env, TABLE_CACHE_MB: 'lots' }), /TABLE_CACHE_MB/);
  });
});
