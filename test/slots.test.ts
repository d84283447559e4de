/** Snapshot slots: never more than `max` held, a freed slot goes to the first waiter, not to a newcomer. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { SnapshotSlots } from '../src/central/services/slots.ts';

it('hands a freed slot to the waiter, so a newcomer cannot push the count past max', async () => {
  const slots = new SnapshotSlots({ max: 1, queue: 4, waitMs: 1000 });
  const order: string[] = [];
  let held = 0;
  let peak = 0;
  const hold = (name: string) => async (release: () => void) => {
    held++;
    peak = Math.max(peak, held);
    order.push(name);
    await new Promise((r) => setTimeout(r, 5));
    held--;
    release();
  };
  const first = await slots.take();
  const waiter = slots.take().then(hold('waiter'));
  first(); // freed while one waits; a newcomer asks in the same turn
  const newcomer = slots.take().then(hold('newcomer'));
  await Promise.all([waiter, newcomer]);
  assert.equal(peak, 1);
  assert.deepEqual(order, ['waiter', 'newcomer']);
});

it('serves a waiting piece fetch before snapshot requests that queued earlier', async () => {
  const slots = new SnapshotSlots({ max: 1, queue: 4, waitMs: 1000 });
  const order: string[] = [];
  const held = await slots.take();
  const waiters = [
    slots.take().then((release) => (order.push('snapshot'), release())),
    slots.take('first').then((release) => (order.push('pieces'), release())),
  ];
  held();
  await Promise.all(waiters);
  assert.deepEqual(order, ['pieces', 'snapshot']);
});
