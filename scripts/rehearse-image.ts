/**
 * `node scripts/rehearse-image.ts [target]`: builds the Dockerfile's target (default
 * `central`) without a container engine, by replaying its stages natively in a temporary
 * directory that stands for /app: COPY, ENV and RUN as written, `COPY --from` by replaying
 * that stage too. Then it runs the ENTRYPOINT as the container would and checks that
 * every TypeScript module came from the compile cache the build filled. CI runs it, so a
 * build step that would fail on production dependencies alone fails here first.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cacheMisses, cacheEntries } from './lib/compile-cache.ts';
import { dockerfileStages, envAssignments } from './lib/compose.ts';

const root = join(import.meta.dirname, '..');
const target = process.argv[2] ?? 'central';

const stages = dockerfileStages(readFileSync(join(root, 'Dockerfile'), 'utf8'));
const made: string[] = [];

/** Replays a stage (after its parents) into a fresh directory; returns it and its ENV and ENTRYPOINT. */
function build(name: string): { dir: string; env: Record<string, string>; entrypoint: string[] } {
  const stage = stages.get(name);
  if (!stage) throw new Error(`no stage ${name} in the Dockerfile`);
  const base = stages.has(stage.from)
    ? build(stage.from)
    : { dir: mkdtempSync(join(tmpdir(), 'dbupdate-image-')), env: {}, entrypoint: [] as string[] };
  made.push(base.dir);
  const { dir } = base;
  const env = { ...base.env };
  let entrypoint = base.entrypoint;
  const inApp = (value: string) => value.replace(/^\/app(?=\/|$)/, dir);
  for (const { instruction, args } of stage.steps) {
    if (instruction === 'ENV') {
      for (const [key, value] of envAssignments(args)) env[key] = inApp(value);
    } else if (instruction === 'COPY') {
      const parts = args.split(/\s+/);
      const from = parts[0]!.startsWith('--from=') ? parts.shift()!.slice('--from='.length) : undefined;
      const dest = parts.pop()!;
      const sourceDir = from ? build(from).dir : root;
      for (const source of parts) {
        const path = join(sourceDir, from ? source.replace(/^\/app\/?/, '') : source);
        const to = dest.endsWith('/') ? join(dir, dest, source.split('/').pop()!) : join(dir, dest);
        cpSync(path, to, { recursive: true });
      }
    } else if (instruction === 'RUN') {
      console.log(`rehearse-image: ${name}: RUN ${args}`);
      // npm gets a cache of its own: a RUN may clean it, and this machine's must stay.
      const npmCache = join(dir, '.rehearsal-npm-cache');
      const run = spawnSync('sh', ['-c', args], {
        cwd: dir,
        env: { ...process.env, npm_config_cache: npmCache, ...env },
        stdio: 'inherit',
      });
      rmSync(npmCache, { recursive: true, force: true });
      if (run.status !== 0) throw new Error(`${name}: RUN ${args} exited with ${run.status}`);
    } else if (instruction === 'ENTRYPOINT') {
      entrypoint = JSON.parse(args) as string[];
    }
  }
  return { dir, env, entrypoint };
}

try {
  const image = build(target);
  const cache = image.env.NODE_COMPILE_CACHE;
  if (!cache) throw new Error('the image sets no NODE_COMPILE_CACHE');
  const built = cacheEntries(cache);
  if (built.size < 40) throw new Error(`the build cached only ${built.size} entries in ${cache}`);
  for (const command of [['--help'], ['central', 'keygen']]) {
    // As the container runs it: the ENTRYPOINT is the script itself, so its shebang's flags apply.
    const script = image.entrypoint[0]!.replace(/^\/app(?=\/)/, image.dir);
    const run = spawnSync(script, [...image.entrypoint.slice(1), ...command], {
      cwd: image.dir,
      env: { PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, ...image.env },
      encoding: 'utf8',
    });
    const missed = cacheMisses(cache, built);
    if (run.status !== 0 || missed.length > 0) {
      throw new Error(
        `${command.join(' ')}: exit ${run.status} ${run.stderr}, compile cache missed ${missed.length} modules`,
      );
    }
    console.log(`rehearse-image: ${target}: ENTRYPOINT ${command.join(' ')} ran from the compile cache`);
  }
} finally {
  for (const dir of new Set(made)) rmSync(dir, { recursive: true, force: true });
}
