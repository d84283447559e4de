/**
 * Central's entry-bounded caches (digests, credentials, rate windows) take memory as they fill
 * instead of allocating for their bound up front, and stay bounded the same way.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { growingLru } from '../src/platform/lru.ts';
import { KeyedWindows } from '../src/platform/fixed-window.ts';

it('holds at most its bound, forgetting the least recently used first', () => {
  const cache = growingLru<string, number>(3);
  for (const k of ['a', 'b', 'c']) cache.set(k, k.charCodeAt(0));
  assert.equal(cache.get('a'), 97); // a is now the most recently used
  cache.set('d', 100);
  assert.deepEqual([...cache.keys()].sort(), ['a', 'c', 'd']);
  for (let i = 0; i < 1000; i++) cache.set(`k${i}`, i);
  assert.equal(cache.size, 3);
  assert.deepEqual([...cache.keys()].sort(), ['k997', 'k998', 'k999']);
});

it('forgets an entry once its time to live has passed', async () => {
  const cache = growingLru<string, number>(10, 30);
  cache.set('x', 1);
  assert.equal(cache.get('x'), 1);
  await sleep(60);
  assert.equal(cache.get('x'), undefined);
});

it('keeps a rate window per key within the bound of keys', () => {
  const windows = new KeyedWindows(1, 60_000, 2);
  assert.equal(windows.take('a'), 0);
  assert.ok(windows.take('a') > 0, 'a second request in the window waits');
  windows.take('b');
  windows.take('c'); // a, the least recently used, is forgotten: at worst it is forgiven early
  assert.equal(windows.take('a'), 0);
});
