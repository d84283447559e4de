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

/** The known name closest to a mistyped one (at most two letters off), for "did you mean". */
export function closest(name: string, known: readonly string[]): string | undefined {
  const distance = (a: string, b: string): number => {
    let row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      const next = [i];
      for (let j = 1; j <= b.length; j++)
        next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      row = next;
    }
    return row[b.length]!;
  };
  const best = known.map((k) => ({ k, d: distance(name, k) })).sort((x, y) => x.d - y.d)[0];
  return best && best.d <= 2 ? best.k : undefined;
}

/** "3 min ago", "2 h ago", "5 d ago"; "never" without a time. */
export function ago(iso: string | null, now = Date.now()): string {
  if (iso === null) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

/** Rows as columns padded to their widest cell, for a terminal. */
export function aligned(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '))
    .join('\n');
}
