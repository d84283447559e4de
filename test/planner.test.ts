/** The answer planner (src/central/sync/planner.ts), row by row of its table, without a database. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { holdsAnswerSlot, plan, type Decision, type Known } from '../src/central/sync/planner.ts';

const known = (over: Partial<Known>): Known => ({
  pieces: true,
  digests: 'absent',
  lackedInMemory: false,
  sharedInMemory: false,
  batchReader: true,
  ownRowRead: false,
  ...over,
});

describe('answer planner', () => {
  const rows: [string, Partial<Known>, Decision][] = [
    ['1: digests in memory, global held', { digests: 'held' }, { kind: 'unchanged' }],
    [
      '1: also for a rows edge, whatever memory lacks',
      { pieces: false, digests: 'held' },
      { kind: 'unchanged' },
    ],
    [
      '2: a pieces edge, lacked pieces in memory',
      { digests: 'lacking', lackedInMemory: true },
      { kind: 'pieces' },
    ],
    [
      '3: a rows edge, lacked rows in memory',
      { pieces: false, digests: 'lacking', lackedInMemory: true },
      { kind: 'rows' },
    ],
    [
      '4: no digests, shared ones in memory',
      { sharedInMemory: true },
      { kind: 'own-row', batchFirst: false },
    ],
    ['4: a rows edge too', { pieces: false, sharedInMemory: true }, { kind: 'own-row', batchFirst: false }],
    ['5: no shared digests, a pieces edge, a batch reader', {}, { kind: 'own-row', batchFirst: true }],
    ['6: no shared digests, a rows edge', { pieces: false }, { kind: 'session' }],
    ['6: no shared digests, no batch reader', { batchReader: false }, { kind: 'session' }],
    [
      '6: own row already read, digests still absent',
      { sharedInMemory: true, ownRowRead: true },
      { kind: 'session' },
    ],
    ['6: digests in memory, lacked pieces not', { digests: 'lacking' }, { kind: 'session' }],
    ['6: digests in memory, lacked rows not', { pieces: false, digests: 'lacking' }, { kind: 'session' }],
  ];
  for (const [name, over, want] of rows)
    it(name, () => {
      assert.deepEqual(plan(known(over)), want);
    });

  it('holds an answer slot exactly for the answers that read or send rows', () => {
    assert.deepEqual(
      (['unchanged', 'pieces', 'rows', 'session'] as const).map((kind) => holdsAnswerSlot({ kind })),
      [false, false, true, true],
    );
    assert.equal(holdsAnswerSlot({ kind: 'own-row', batchFirst: true }), true);
  });

  it('ends: after the own-row step every input leads to an answer or a session', () => {
    const values = {
      pieces: [true, false],
      digests: ['absent', 'held', 'lacking'],
      lackedInMemory: [true, false],
      sharedInMemory: [true, false],
      batchReader: [true, false],
    } as const;
    let seen = 0;
    for (const pieces of values.pieces)
      for (const digests of values.digests)
        for (const lackedInMemory of values.lackedInMemory)
          for (const sharedInMemory of values.sharedInMemory)
            for (const batchReader of values.batchReader) {
              const d = plan({
                pieces,
                digests,
                lackedInMemory,
                sharedInMemory,
                batchReader,
                ownRowRead: true,
              });
              assert.notEqual(d.kind, 'own-row');
              seen++;
            }
    assert.equal(seen, 48);
  });
});
