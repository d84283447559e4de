/**
 * `edge sync` on a terminal: one line per table, rewritten in place while it loads
 * (rows of the manifest's count, and bytes), left standing when the table is done.
 * Only on a terminal: a pipe or a log file gets no carriage returns.
 */
import type { TableProgress } from '../edge/model.ts';

const MB = 1024 * 1024;

export function describeProgress(p: TableProgress): string {
  const pct = p.rowCount === 0 ? 100 : Math.floor((100 * p.rows) / p.rowCount);
  return (
    `  ${p.table.padEnd(16)} ${p.rows.toLocaleString('en').padStart(11)} / ` +
    `${p.rowCount.toLocaleString('en').padEnd(11)} rows ${String(pct).padStart(3)} %  ` +
    `${(p.bytes / MB).toFixed(1).padStart(7)} MB`
  );
}

/** A progress listener drawing on `out` when it is a terminal; undefined otherwise. */
export function terminalProgress(out: NodeJS.WriteStream): ((p: TableProgress) => void) | undefined {
  if (!out.isTTY) return undefined;
  return (p) => out.write(`\r\x1b[2K${describeProgress(p)}${p.done ? '\n' : ''}`);
}
