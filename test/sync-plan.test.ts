/** The edge sync's decisions (src/edge/sync/plan.ts), row by row of its tables, without a database. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TableDigest } from '../src/contract/canonical.ts';
import type { DataModel } from '../src/contract/data-model.ts';
import type { Piece } from '../src/contract/pieces.ts';
import { tableDef } from './helpers/tables.ts';
import type { Manifest } from '../src/contract/wire.ts';
import type { HeldPieces } from '../src/edge/repo/pieces.ts';
import { isUnchanged, offerFor, planLoad } from '../src/edge/sync/plan.ts';

const model: DataModel = { version: 1, tables: [tableDef('companies'), tableDef('location_groups')] };
const key = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const pair = (n: number) => `${key(n)}\t${key(n)}`;
const piece = (id: string, rows: number, last: string): Piece => ({ id, rows, last });
const digest = (name: string, rowCount: number, sha256: string): TableDigest =>
  ({ name, rowCount, sha256 }) as TableDigest;

/** Companies in pieces a (2 rows) and b (3 rows); location_groups in one piece of 4 rows. */
const companies = [piece('a', 2, key(2)), piece('b', 3, key(5))];
const groups = [piece('g', 4, pair(4))];
const digests = [digest('companies', 5, 'c1'), digest('location_groups', 4, 'l1')];

function manifest(pieces: Manifest['pieces'], fields: Partial<Manifest> = {}): Manifest {
  return {
    manifestId: '01JAAAAAAAAAAAAAAAAAAAAAAA',
    generatedAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-01T00:10:00.000Z',
    schemaVersion: 1,
    tables: digests,
    globalSha256: 'g'.repeat(64),
    filters: { companyId: key(1), locationId: key(1), deviceId: key(1) },
    rowsIncluded: true,
    ...(pieces ? { pieces } : {}),
    ...fields,
  };
}

const wire = (ps: Piece[]) => ps.map((p): [string, number, string] => [p.id, p.rows, p.last]);
const held = (entries: [string, string, Piece[]][]): Map<string, HeldPieces> =>
  new Map(entries.map(([name, tableSha256, pieces]) => [name, { tableSha256, pieces }]));
const modes = (plan: ReturnType<typeof planLoad>) => plan.map((t) => [t.def.name, t.mode, t.load]);

describe('what the edge offers Central (offerFor)', () => {
  it('offers nothing with --full, or while a failure casts doubt on what it holds', () => {
    assert.deepEqual(offerFor(true, false, 'replica'), { hash: false, tables: false });
    assert.deepEqual(offerFor(false, true, 'replica'), { hash: false, tables: false });
  });
  it('offers the global hash alone when no table can be loaded on its own', () => {
    assert.deepEqual(offerFor(false, false, 'whole'), { hash: true, tables: false });
  });
  it('offers the hash and the tables otherwise', () => {
    for (const mode of ['replica', 'deferred'] as const)
      assert.deepEqual(offerFor(false, false, mode), { hash: true, tables: true });
  });
});

describe('whether a manifest changes anything (isUnchanged)', () => {
  const offered = { hash: true, tables: true };
  const m = manifest(undefined);
  it('is unchanged without rows, or when the offered hash is the manifest’s', () => {
    assert.equal(isUnchanged(manifest(undefined, { rowsIncluded: false }), offered, {}), true);
    assert.equal(isUnchanged(m, offered, { lastGlobalSha256: m.globalSha256 }), true);
  });
  it('is changed when the hash differs, or was not offered', () => {
    assert.equal(isUnchanged(m, offered, { lastGlobalSha256: 'other' }), false);
    assert.equal(isUnchanged(m, { hash: false, tables: false }, { lastGlobalSha256: m.globalSha256 }), false);
  });
});

describe('per table (planLoad)', () => {
  it('keeps a table without pieces whose hash the edge holds', () => {
    const plan = planLoad(manifest({ location_groups: wire(groups) }), model, digests, undefined);
    assert.deepEqual(modes(plan), [
      ['companies', 'keep', []],
      ['location_groups', 'full', [0]],
    ]);
  });
  it('refuses a table without pieces that the edge lacks or holds otherwise', () => {
    const m = manifest({ location_groups: wire(groups) });
    for (const heldTables of [undefined, [digest('companies', 5, 'old'), digests[1]!]])
      assert.throws(() => planLoad(m, model, heldTables, undefined), { code: 'SNAPSHOT_INVALID' });
  });
  it('reloads every piece when the tables were not offered, or the held pieces describe another table', () => {
    const m = manifest({ companies: wire(companies), location_groups: wire(groups) });
    const stale = held([['companies', 'old', companies]]);
    for (const [heldTables, heldPieces] of [
      [undefined, undefined],
      [digests, undefined],
      [digests, stale],
    ] as const)
      assert.deepEqual(modes(planLoad(m, model, heldTables, heldPieces)), [
        ['companies', 'full', [0, 1]],
        ['location_groups', 'full', [0]],
      ]);
  });
  it('reloads a table of no pieces as full: it is emptied', () => {
    const m = manifest(
      { companies: [], location_groups: wire(groups) },
      {
        tables: [digest('companies', 0, 'c0'), digests[1]!],
      },
    );
    const plan = planLoad(m, model, digests, held([['companies', 'c1', companies]]));
    assert.deepEqual(modes(plan)[0], ['companies', 'full', []]);
  });
  it('patches a table whose held pieces describe it: only pieces of another id or lower bound', () => {
    // Piece a changed (a2); b kept its id, but its lower bound moved with a2's last key.
    const now = [piece('a2', 3, key(3)), piece('b', 2, key(5))];
    const also = [piece('c', 1, key(6))];
    const m = manifest(
      { companies: wire([...now, ...also]), location_groups: wire(groups) },
      {
        tables: [digest('companies', 6, 'c2'), digests[1]!],
      },
    );
    const plan = planLoad(
      m,
      model,
      digests,
      held([
        ['companies', 'c1', companies],
        ['location_groups', 'l1', groups],
      ]),
    );
    assert.deepEqual(modes(plan), [
      ['companies', 'delta', [0, 1, 2]],
      ['location_groups', 'delta', []],
    ]);
    const same = planLoad(
      manifest(
        { companies: wire([companies[0]!, piece('b2', 3, key(5))]) },
        { tables: [digests[0]!, digests[1]!] },
      ),
      model,
      digests,
      held([['companies', 'c1', companies]]),
    );
    assert.deepEqual(modes(same)[0], ['companies', 'delta', [1]]);
  });
  it('refuses pieces that do not describe the table: rows, order, key width', () => {
    for (const bad of [
      [piece('a', 2, key(2)), piece('b', 2, key(5))],
      [piece('b', 3, key(5)), piece('a', 2, key(2))],
      [piece('a', 2, pair(2)), piece('b', 3, pair(5))],
    ])
      assert.throws(() => planLoad(manifest({ companies: wire(bad) }), model, digests, undefined), {
        code: 'SNAPSHOT_INVALID',
      });
  });
});
