/** Snapshot slots: never more than `max` held, a freed slot goes to the first waiter, not to a newcomer. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Admission, SnapshotSlots } from '../src/central/sync/admission.ts';
import { AnswerScope } from '../src/central/sync/answer-scope.ts';

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

it('widens the Retry-After window with the backlog it shed, within 10 minutes', async () => {
  const slots = new SnapshotSlots({ max: 1, queue: 0, waitMs: 1000 });
  assert.equal(slots.retryWindowSeconds(), 55, 'nothing shed: the 5–60 s of a quiet Central');
  const held = await slots.take();
  const shed: number[] = [];
  for (let i = 0; i < 600; i++) {
    const err = await slots.take().then(
      () => assert.fail('no slot was free'),
      (e: { code: string; details: { retryAfterSeconds: number } }) => e,
    );
    assert.equal(err.code, 'OVERLOADED');
    shed.push(err.details.retryAfterSeconds);
  }
  held();
  // 600 shed, about one served a second at most: they are spread over up to 10 minutes.
  assert.equal(slots.retryWindowSeconds(), 595);
  assert.ok(Math.max(...shed) > 300, `latest Retry-After ${Math.max(...shed)} s`);
  assert.ok(shed.every((s) => s >= 5 && s <= 600));
});

/** What a take came to: taken, or the code it was refused with. */
const outcome = (p: Promise<unknown>) =>
  p.then(
    () => 'taken',
    (e: { code: string }) => e.code,
  );

it('lets answers from memory past a full session gate, within their own bound; a release gives back both', async () => {
  const admission = new Admission({ max: 1, answers: 2, perDevice: 2, queue: 0, waitMs: 1000 });
  const sessionHolder = admission.forRequest();
  await sessionHolder.take('answer');
  const releaseBoth = await sessionHolder.take('session');
  assert.equal(await outcome(admission.forRequest().take('session')), 'OVERLOADED', 'one session at once');
  const fromMemory = admission.forRequest();
  assert.equal(await outcome(fromMemory.take('answer')), 'taken', 'an answer needs no session slot');
  assert.equal(await outcome(admission.forRequest().take('answer')), 'OVERLOADED', 'two answers at once');
  releaseBoth(); // what take resolves to gives back every slot the request holds
  const next = admission.forRequest();
  assert.equal(await outcome(next.take('answer')), 'taken', 'its answer slot came back');
  assert.equal(await outcome(next.take('session')), 'taken', 'and its session slot');
  sessionHolder.free(); // idempotent: gives back nothing twice
  assert.equal(
    await outcome(admission.forRequest().take('answer')),
    'OVERLOADED',
    'not more than one came back',
  );
  fromMemory.free();
  next.free();
});

it('gives back a session slot alone once the session is done, keeping the answer slot for the rows from memory', async () => {
  const admission = new Admission({ max: 1, answers: 1, perDevice: 2, queue: 0, waitMs: 1000 });
  const answer = admission.forRequest();
  await answer.take('answer');
  await answer.take('session');
  answer.freeSession();
  answer.freeSession(); // idempotent
  const other = admission.forRequest();
  assert.equal(await outcome(other.take('session')), 'taken', 'the session slot came back');
  assert.equal(await outcome(admission.forRequest().take('answer')), 'OVERLOADED', 'the answer slot did not');
  answer.free(); // the session slot it gave back is not given back twice
  assert.equal(
    await outcome(admission.forRequest().take('session')),
    'OVERLOADED',
    'one session at once still',
  );
  assert.equal(await outcome(admission.forRequest().take('answer')), 'taken', 'now the answer slot');
  other.free();
});

it('frees a buffered answer its slots at once, but a held session its slot only once the session is closed', async () => {
  const admission = new Admission({ max: 1, answers: 1, perDevice: 2, queue: 0, waitMs: 1000 });
  const fromMemory = new AnswerScope(admission);
  await fromMemory.admit('answer');
  await fromMemory.admit('session');
  fromMemory.answerMade();
  const next = admission.forRequest();
  assert.equal(await outcome(next.take('answer')), 'taken', 'its answer slot came back');
  assert.equal(await outcome(next.take('session')), 'taken', 'and its session slot');
  next.free();

  const held = new AnswerScope(admission);
  await held.admit('answer');
  await held.admit('session');
  let closed = false;
  held.hold({ close: async () => void (closed = true) });
  held.answerMade();
  assert.equal(await outcome(admission.forRequest().take('session')), 'OVERLOADED', 'its session is open');
  await held.close({ sent: true });
  assert.ok(closed);
  assert.equal(await outcome(admission.forRequest().take('session')), 'taken', 'given back once closed');
});
