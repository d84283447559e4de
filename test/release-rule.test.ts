/** Release control's decisions (src/central/release/rule.ts), row by row of its tables, without a database. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TableDigest } from '../src/contract/canonical.ts';
import {
  afterJudging,
  bulkOf,
  guardLimits,
  judgeChange,
  releaseDecision,
  type GuardState,
  type ReleaseDecision,
  type ReleaseKnown,
} from '../src/central/release/rule.ts';

const known = (over: Partial<ReleaseKnown>): ReleaseKnown => ({
  offersHeld: true,
  changes: true,
  paused: false,
  guard: 'clear',
  changedSinceMark: true,
  reached: true,
  outsideWindow: false,
  ...over,
});

describe('release decision', () => {
  const judge = (onOver: 'trip' | 'hold' | 'ignore', window: boolean): ReleaseDecision => ({
    kind: 'judge',
    onOver,
    window,
  });
  const rows: [string, Partial<ReleaseKnown>, ReleaseDecision][] = [
    [
      '1: offers nothing, even paused, tripped, unreached',
      { offersHeld: false, paused: true, guard: 'tripped', reached: false },
      { kind: 'serve' },
    ],
    ['2: nothing changes, even paused', { changes: false, paused: true }, { kind: 'serve' }],
    [
      '3: paused',
      { paused: true, guard: 'approved', changedSinceMark: false },
      { kind: 'hold', reason: 'paused' },
    ],
    ['4: tripped', { guard: 'tripped', reached: false }, { kind: 'hold', reason: 'guard' }],
    ['5: the rollout has not reached it', { reached: false }, { kind: 'hold', reason: 'wave' }],
    [
      '6: approved, its location unchanged since',
      { guard: 'approved', changedSinceMark: false },
      { kind: 'serve' },
    ],
    [
      '6: approved, unchanged since, outside its window: only the bulk is weighed',
      { guard: 'approved', changedSinceMark: false, outsideWindow: true },
      judge('ignore', true),
    ],
    [
      '7: rejected, its location unchanged since: a change over the limit is held, nothing trips',
      { guard: 'rejected', changedSinceMark: false },
      judge('hold', false),
    ],
    ['8: clear', {}, judge('trip', false)],
    ['8: clear, outside its window', { outsideWindow: true }, judge('trip', true)],
    ['8: rejected, but changed since', { guard: 'rejected' }, judge('trip', false)],
    ['8: approved, but changed since', { guard: 'approved' }, judge('trip', false)],
  ];
  for (const [name, over, expected] of rows)
    it(name, () => assert.deepEqual(releaseDecision(known(over)), expected));

  it('never sends a change while paused, nor holds a device that offers nothing, over every input', () => {
    const guards: GuardState[] = ['clear', 'tripped', 'approved', 'rejected'];
    for (const offersHeld of [true, false])
      for (const changes of [true, false])
        for (const paused of [true, false])
          for (const guard of guards)
            for (const changedSinceMark of [true, false])
              for (const reachedIt of [true, false]) {
                const d = releaseDecision({
                  offersHeld,
                  changes,
                  paused,
                  guard,
                  changedSinceMark,
                  reached: reachedIt,
                  outsideWindow: false,
                });
                if (!offersHeld || !changes) assert.equal(d.kind, 'serve');
                else if (paused) assert.deepEqual(d, { kind: 'hold', reason: 'paused' });
                else if (guard === 'tripped') assert.equal(d.kind, 'hold');
                else if (!reachedIt) assert.equal(d.kind, 'hold');
              }
  });
});

describe('mass-change guard', () => {
  const t = (name: string, rowCount: number, sha = 'a'): TableDigest =>
    ({ name, rowCount, sha256: sha.repeat(64) }) as TableDigest;
  const limits = guardLimits(['users', 'areas', 'group_users'], 20, 50, [{ table: 'areas', limit: 'off' }]);

  it('lets an unchanged table, an edit and a small delete go', () => {
    assert.equal(judgeChange([t('users', 1000)], [t('users', 1000)], limits), undefined);
    assert.equal(
      judgeChange([t('users', 1000)], [t('users', 1000, 'b')], limits),
      undefined,
      'an edit removes nothing',
    );
    assert.equal(judgeChange([t('users', 1000)], [t('users', 801, 'b')], limits), undefined, '19.9 %');
  });

  it('holds a delete over the percent and the floor, naming the table', () => {
    assert.deepEqual(judgeChange([t('users', 1000)], [t('users', 799, 'b')], limits), {
      table: 'users',
      held: 1000,
      next: 799,
      removed: 201,
      limit: { percent: 20, minRows: 50 },
    });
  });

  it('lets a large share of a small table go under the floor, and a table turned off', () => {
    assert.equal(
      judgeChange([t('users', 40)], [t('users', 0, 'b')], limits),
      undefined,
      '40 rows < floor 50',
    );
    assert.equal(judgeChange([t('areas', 1000)], [t('areas', 0, 'b')], limits), undefined);
  });

  it('guards nothing at 0 %, and a table set on its own', () => {
    const own = guardLimits(['users', 'areas'], 0, 50, [
      { table: 'areas', limit: { percent: 5, minRows: 1 } },
    ]);
    assert.equal(judgeChange([t('users', 1000)], [t('users', 0, 'b')], own), undefined);
    assert.equal(judgeChange([t('areas', 100)], [t('areas', 94, 'b')], own)?.table, 'areas');
  });
});

describe('after judging', () => {
  const over = { table: 'users', held: 100, next: 10, removed: 90, limit: { percent: 20, minRows: 50 } };
  it('trips on a change over the limit, holds it after a reject, lets it go after an approval', () => {
    assert.equal(afterJudging({ onOver: 'trip', window: true }, over, 500, 100), 'trip');
    assert.equal(afterJudging({ onOver: 'hold', window: true }, over, 500, 100), 'hold');
    assert.equal(afterJudging({ onOver: 'ignore', window: true }, over, 500, 100), 'window');
  });
  it('holds a bulk change outside the window, and lets a small one or an edit go', () => {
    assert.equal(afterJudging({ onOver: 'trip', window: true }, undefined, 100, 100), 'window');
    assert.equal(afterJudging({ onOver: 'trip', window: true }, undefined, 99, 100), 'serve');
    assert.equal(afterJudging({ onOver: 'hold', window: false }, undefined, 10_000, 100), 'serve');
  });
  it('counts rows added and removed, not rows edited', () => {
    const t = (name: string, rowCount: number, sha: string) =>
      ({ name, rowCount, sha256: sha.repeat(64) }) as TableDigest;
    assert.equal(
      bulkOf([t('users', 10, 'a'), t('areas', 5, 'a')], [t('users', 30, 'b'), t('areas', 5, 'b')]),
      20,
    );
    assert.equal(bulkOf([t('users', 10, 'a')], [t('users', 10, 'a')]), 0);
  });
});
