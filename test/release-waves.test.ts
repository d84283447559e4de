/** Staged rollouts and sync windows (src/central/release/waves.ts, windows.ts), without a database. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  bucketOf,
  reached,
  rolloutStep,
  waveCount,
  wavesOpen,
  type Rollout,
  type Staging,
} from '../src/central/release/waves.ts';
import { inWindow, parseWindows } from '../src/central/release/windows.ts';

const staging: Staging = {
  wavePercent: 25,
  waveSeconds: 600,
  canaryCohort: 'canary',
  canaryAcks: 3,
  maxFailures: 2,
};
const T = Date.parse('2026-12-07T10:00:00Z');
const at = (minutes: number) => T + minutes * 60_000;
const rollout = (over: Partial<Rollout> = {}): Rollout => ({
  startedAt: new Date(T - 3_600_000),
  canariesOkAt: new Date(T),
  endedAt: null,
  ...over,
});
const ids = Array.from({ length: 2000 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);

describe('waves', () => {
  it('reach every device when no rollout runs, or staging is off', () => {
    assert.ok(reached(rollout({ endedAt: new Date(T) }), staging, null, ids[0]!, at(0)));
    assert.ok(reached(rollout({ canariesOkAt: null }), { ...staging, wavePercent: 0 }, null, ids[0]!, at(0)));
  });

  it('reach the canaries first, and no one else before they acked', () => {
    const r = rollout({ canariesOkAt: null });
    assert.ok(reached(r, staging, 'canary', ids[0]!, at(0)));
    assert.equal(ids.filter((id) => reached(r, staging, 'site-a', id, at(1000))).length, 0);
  });

  it('open a wave every WAVE_SECONDS, each reaching about WAVE_PERCENT more, and always the same devices', () => {
    const reachedAt = (m: number) => ids.filter((id) => reached(rollout(), staging, null, id, at(m)));
    const shares = [0, 10, 20, 30].map((m) => reachedAt(m).length / ids.length);
    for (const [i, share] of shares.entries())
      assert.ok(Math.abs(share - 0.25 * (i + 1)) < 0.05, `${i}: ${share}`);
    for (const id of reachedAt(10)) assert.ok(reachedAt(20).includes(id), 'a wave keeps the devices it had');
    assert.equal(wavesOpen(rollout(), staging, at(30)), waveCount(staging));
    assert.ok(ids.every((id) => bucketOf(id) >= 0 && bucketOf(id) < 100));
  });

  it('step: pause on failures naming them, else canaries ok, else end after the last wave', () => {
    const counts = { canariesAcked: 3, canaries: 5, failures: [] };
    assert.deepEqual(
      rolloutStep(rollout({ canariesOkAt: null }), staging, { ...counts, canariesAcked: 2 }, at(0)),
      { kind: 'none' },
    );
    assert.deepEqual(rolloutStep(rollout({ canariesOkAt: null }), staging, counts, at(0)), {
      kind: 'canaries-ok',
    });
    assert.deepEqual(
      rolloutStep(
        rollout({ canariesOkAt: null }),
        staging,
        { ...counts, canariesAcked: 1, canaries: 1 },
        at(0),
      ),
      { kind: 'canaries-ok' },
      'all of fewer canaries',
    );
    assert.deepEqual(rolloutStep(rollout(), staging, counts, at(29)), { kind: 'none' });
    assert.deepEqual(rolloutStep(rollout(), staging, counts, at(30)), { kind: 'end' });
    const failing = {
      ...counts,
      failures: [
        { code: 'HASH_MISMATCH', devices: 1 },
        { code: 'LOCAL_DRIFT', devices: 1 },
      ],
    };
    const step = rolloutStep(rollout(), staging, failing, at(0));
    assert.equal(step.kind, 'pause');
    assert.match(
      (step as { reason: string }).reason,
      /2 devices failed \(HASH_MISMATCH ×1, LOCAL_DRIFT ×1\)/,
    );
  });
});

describe('sync windows', () => {
  const windows = parseWindows('night=22:00-04:00,site-a=02:00-05:30');
  it('hold within a day and across midnight', () => {
    const day = (hhmm: string) => new Date(`2026-12-07T${hhmm}:00Z`);
    assert.ok(inWindow(windows.get('site-a')!, day('02:00')));
    assert.ok(inWindow(windows.get('site-a')!, day('05:29')));
    assert.ok(!inWindow(windows.get('site-a')!, day('05:30')));
    assert.ok(inWindow(windows.get('night')!, day('23:10')));
    assert.ok(inWindow(windows.get('night')!, day('03:59')));
    assert.ok(!inWindow(windows.get('night')!, day('12:00')));
  });
  it('refuse a time of day that is none', () => {
    assert.throws(() => parseWindows('x=25:00-26:00'), /25:00 is not a time of day/);
  });
});
