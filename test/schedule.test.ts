/** The edge's schedule: a fixed interval from the end of each run, never overlapping; stop waits for a run. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { repeatEvery } from '../src/platform/schedule.ts';

it('runs a task every interval, one at a time, and stop() waits for the running one', async () => {
  const events: string[] = [];
  let active = 0;
  const schedule = repeatEvery(20, 5, async () => {
    active++;
    events.push(`start ${active}`);
    await sleep(30); // longer than the interval: the next run must still wait for this one
    events.push('end');
    active--;
  });
  await sleep(200);
  await schedule.stop();
  const runs = events.filter((e) => e.startsWith('start')).length;
  assert.ok(runs >= 2 && runs <= 5, `${runs} runs: ${events.join(', ')}`);
  assert.ok(
    events.every((e) => e === 'end' || e === 'start 1'),
    events.join(', '),
  );
  assert.equal(events.at(-1), 'end', 'stop() resolved only after the running task ended');
  await sleep(60);
  assert.equal(events.filter((e) => e.startsWith('start')).length, runs, 'nothing ran after stop()');
});
