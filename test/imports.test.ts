/**
 * The image installs production dependencies only (`npm ci --omit=dev`), so the code it
 * runs must import nothing else. Only the demo may use development packages (the
 * embedded PostgreSQL), and nothing loads it except by a dynamic import when asked for.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';

const DEV_ONLY = new Set(['src/cli/demo.ts', 'src/platform/embedded.ts']);
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies: Record<string, string> };

const files = readdirSync('src', { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
  .map((f) => join('src', f));

/** Runtime imports of a file: static (not `import type`), side-effect and dynamic. */
function importsOf(file: string): { specifier: string; dynamic: boolean }[] {
  const text = readFileSync(file, 'utf8');
  const found: { specifier: string; dynamic: boolean }[] = [];
  for (const m of text.matchAll(/^import\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?'([^']+)'/gm))
    found.push({ specifier: m[1]!, dynamic: false });
  for (const m of text.matchAll(/\bimport\('([^']+)'\)/g)) found.push({ specifier: m[1]!, dynamic: true });
  return found;
}

const packageOf = (specifier: string) =>
  specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;

describe('imports of the shipped code', () => {
  it('name only production dependencies, outside the demo', () => {
    const undeclared: string[] = [];
    for (const file of files) {
      if (DEV_ONLY.has(file)) continue;
      for (const { specifier } of importsOf(file)) {
        if (specifier.startsWith('.') || specifier.startsWith('node:')) continue;
        if (!(packageOf(specifier) in pkg.dependencies)) undeclared.push(`${file}: ${specifier}`);
      }
    }
    assert.deepEqual(undeclared, []);
  });

  it('load the demo only on demand', () => {
    const static_: string[] = [];
    for (const file of files) {
      if (DEV_ONLY.has(file)) continue;
      for (const { specifier, dynamic } of importsOf(file)) {
        if (!specifier.startsWith('.') || dynamic) continue;
        const target = relative('.', join(dirname(file), specifier));
        if (DEV_ONLY.has(target)) static_.push(`${file} → ${target}`);
      }
    }
    assert.deepEqual(static_, []);
    // The parser itself finds what it should: the demo's one dynamic import, a known dependency.
    assert.ok(importsOf('src/cli/main.ts').some((i) => i.dynamic && i.specifier === './demo.ts'));
    assert.ok(importsOf('src/central/server.ts').some((i) => i.specifier === 'fastify-plugin'));
  });

  it('keep src, scripts and benches free of test code', () => {
    const shipped = ['src', 'scripts', 'bench', 'bin'].flatMap((dir) =>
      readdirSync(dir, { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
        .map((f) => join(dir, f)),
    );
    const intoTests = shipped.flatMap((file) =>
      importsOf(file)
        .filter(({ specifier }) => specifier.startsWith('.'))
        .map(({ specifier }) => relative('.', join(dirname(file), specifier)))
        .filter((target) => target.startsWith('test/'))
        .map((target) => `${file} → ${target}`),
    );
    assert.deepEqual(intoTests, []);
    assert.ok(shipped.includes('scripts/rehearse-image.ts') && shipped.length > 20, String(shipped.length));
  });
});
