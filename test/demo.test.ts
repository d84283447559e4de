/** `dbupdate demo --once`, exactly as a new user runs it: a real process, two embedded clusters. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { it } from 'node:test';
import { TABLE_NAMES } from '../src/contract/tables.ts';

it('runs the whole system and prints the summary of a successful first sync, and no stale address', async () => {
  const child = spawn(process.execPath, ['bin/dbupdate.ts', 'demo', '--once', '--users', '500'], {
    env: { ...process.env, LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearTimeout(timer);
  assert.equal(code, 0, out);
  assert.match(out, /first sync success in \d+ ms \(manifest [0-9A-Z]{26}\)/);
  for (const table of TABLE_NAMES) {
    assert.match(out, new RegExp(`\\n  ${table}\\s+\\d+  [0-9a-f]{64}\\n`), table);
  }
  // --once stops everything before it exits: no address of a stopped service is printed.
  assert.doesNotMatch(out, /http:\/\/127\.0\.0\.1/);
});
