/** TABLE_CACHE_MB=auto (src/central/sync/memory/sizing.ts), row by row of its table, without a database. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadCentralConfig } from '../src/central/config.ts';
import { sizeTableCache } from '../src/central/sync/memory/sizing.ts';
import { TEST_KEYS } from './helpers/keys.ts';

const GIB = 2 ** 30;
const MB = 2 ** 20;
/** 40-user locations: their shared tables are far under 64 KB a location. */
const fleet = (locations: number, sharedBytes = locations * 20_000) => ({ locations, sharedBytes });

describe('table cache sizing', () => {
  it('keeps a number the operator set', () => {
    assert.deepEqual(sizeTableCache(256, fleet(10_000), 24 * GIB), { mb: 256, why: 'TABLE_CACHE_MB as set' });
    assert.equal(sizeTableCache(0, fleet(10_000), 24 * GIB).mb, 0);
  });

  it('gives 64 KB per location, the fleet bench’s 640 MB at 10,000 locations', () => {
    const sized = sizeTableCache('auto', fleet(10_000), 24 * GIB);
    assert.equal(sized.mb, 625);
    assert.match(sized.why, /^TABLE_CACHE_MB=auto: 10000 locations × 64 KB \(24576 MB given\)$/);
  });

  it('holds the shared tables whole when locations are larger (400 users each)', () => {
    const large = sizeTableCache('auto', fleet(10_000, 1_500 * MB), 24 * GIB);
    assert.equal(large.mb, 1_500);
    assert.match(
      large.why,
      /^TABLE_CACHE_MB=auto: the 10000 locations' shared tables hold 1500 MB \(24576 MB given\)$/,
    );
    assert.equal(
      sizeTableCache('auto', fleet(10_000, 8_000 * MB), 24 * GIB).mb,
      6_144,
      'a quarter of 24 GiB',
    );
    // One location of a million users is streamed to its devices, not held: the floor.
    assert.equal(sizeTableCache('auto', fleet(1, 400 * MB), 24 * GIB).mb, 32);
    assert.equal(sizeTableCache('auto', fleet(100, 400 * MB), 24 * GIB).mb, 100, '1 MB a location');
  });

  it('never goes under 32 MB, nor over a quarter of the memory given', () => {
    assert.equal(sizeTableCache('auto', fleet(3), 24 * GIB).mb, 32);
    const capped = sizeTableCache('auto', fleet(100_000), 2 * GIB);
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
