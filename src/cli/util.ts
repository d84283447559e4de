/** Helpers shared by the command groups. */
import { parseArgs } from 'node:util';
import { createPool, type Pool } from '../platform/db.ts';
import { AppError } from '../platform/errors.ts';

export type Command = (argv: string[]) => Promise<number>;

/** parseArgs with our error type, so a bad flag is a USAGE error, not a crash. */
export function parseFlags<T extends NonNullable<Parameters<typeof parseArgs>[0]>['options']>(
  argv: string[],
  options: T,
) {
  try {
    return parseArgs({ args: argv, options: options!, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new AppError('USAGE', (err as Error).message);
  }
}

/** A small pool for one command, closed when the command ends. */
export async function withPool<T>(url: string, work: (pool: Pool) => Promise<T>): Promise<T> {
  const pool = createPool(url, { max: 4, applicationName: 'dbupdate-cli' });
  try {
    return await work(pool);
  } finally {
    await pool.end();
  }
}
