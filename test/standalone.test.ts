/**
 * The project stands alone: a clone anywhere (as root, under a private directory) runs
 * the demo, the demo stops cleanly on a terminal's Ctrl-C, and the contract and its
 * vectors live in the repository (equal to the team's copy when one sits beside it).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';

const root = resolve(import.meta.dirname, '..');

interface Demo {
  code: number | null;
  out: string;
}

function runDemo(
  cwd: string,
  args: string[],
  onOutput?: (out: string, groupId: number) => void,
): Promise<Demo> {
  const child = spawn(process.execPath, ['bin/dbupdate.ts', 'demo', ...args], {
    cwd,
    env: { ...process.env, LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, as a shell gives a job: a terminal's Ctrl-C reaches the whole group.
    detached: true,
  });
  let out = '';
  const seen = (c: Buffer) => {
    out += c.toString();
    onOutput?.(out, child.pid!);
  };
  child.stdout.on('data', seen);
  child.stderr.on('data', seen);
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((done) =>
    child.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, out });
    }),
  );
}

describe('a clone anywhere', () => {
  it('runs the demo as root from under a private (0700) directory', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('only root runs PostgreSQL as another user');
    const home = await mkdtemp(join(tmpdir(), 'dbupdate-private-'));
    try {
      await chmod(home, 0o700);
      const clone = join(home, 'dbupdate');
      await mkdir(clone);
      // Hard links: a full copy of the working tree in no time, the same files under a private path.
      const copy = spawnSync('cp', ['-al', 'bin', 'src', 'package.json', 'node_modules', clone], {
        cwd: root,
      });
      assert.equal(copy.status, 0, copy.stderr?.toString());
      const demo = await runDemo(clone, ['--once', '--users', '50']);
      assert.equal(demo.code, 0, demo.out);
      assert.match(demo.out, /first sync success in \d+ ms/);
      assert.doesNotMatch(demo.out, /EACCES/);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it("stops on a terminal's Ctrl-C within seconds and leaves no temporary directory", async () => {
    let interrupted = 0;
    const { code, out } = await runDemo(root, ['--users', '50', '--interval', '600'], (text, group) => {
      if (interrupted === 0 && text.includes('Ctrl-C stops everything')) {
        interrupted = Date.now();
        process.kill(-group, 'SIGINT'); // the whole group: Node, both PostgreSQL servers and their workers
      }
    });
    const stoppedMs = Date.now() - interrupted;
    assert.ok(interrupted > 0, out);
    assert.equal(code, 0, out);
    assert.ok(stoppedMs < 5000, `stopped ${stoppedMs} ms after Ctrl-C`);
    const dir = /clusters in (\S+)/.exec(out)?.[1];
    assert.ok(dir, out);
    assert.equal(existsSync(dir), false, `${dir} was left behind`);
    assert.match(out, /MANIFEST_PUBLIC_KEYS=\S{40,} CENTRAL_URL=http:\/\/127\.0\.0\.1:\d+/);
  });

  it('refuses a bad option before any cluster starts', async () => {
    const demo = await runDemo(root, ['--log-level', 'verbose']);
    assert.equal(demo.code, 2);
    assert.doesNotMatch(demo.out, /starting two embedded PostgreSQL/);
    assert.match(demo.out, /^dbupdate: USAGE: --log-level must be one of/m);
  });
});

describe('the contract inside the repository', () => {
  const shared = join(root, '..', 'shared', 'spec');

  it('is the team copy byte for byte, where one sits beside the checkout', (t) => {
    if (!existsSync(shared)) return t.skip(`no ${shared} here; nothing to compare`);
    const contract = readFileSync(join(root, 'docs', 'contract.md'), 'utf8');
    const normative = readFileSync(join(shared, 'CONTRACT.md'), 'utf8');
    // The shared text first, unchanged; what this project adds comes after it, as §7.
    assert.equal(contract.slice(0, normative.length), normative);
    assert.match(contract.slice(normative.length), /^\n## 7\. /);
    assert.deepEqual(
      readFileSync(join(root, 'test', 'vectors', 'scope-v1.json')),
      readFileSync(join(shared, 'vectors', 'scope-v1.json')),
    );
  });

  it('is all the project reads: no tracked file points outside the repository', () => {
    const outside = ['..', 'shared'].join('/');
    const files = spawnSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' }).stdout.split('\n');
    const pointing = files.filter(
      (f) =>
        f &&
        existsSync(join(root, f)) &&
        f !== 'test/standalone.test.ts' &&
        readFileSync(join(root, f), 'utf8').includes(outside),
    );
    assert.deepEqual(pointing, []);
  });
});
