/**
 * Release control's decisions, pure (docs/releases.md). Central cannot serve an older
 * version of its data, but every edge holds the version it last applied: holding a change
 * means answering, in a signed manifest, "keep what you hold".
 *
 * Whether an answer is held (releaseDecision), first match wins:
 *
 * | # | offers what it holds | the answer changes it | freeze | guard    | location changed since the guard tripped | reached by the rollout (waves.ts) | → decision |
 * |---|----------------------|-----------------------|--------|----------|------------------------------------------|-----------------------------------|------------|
 * | 1 | no (or empty tables) | –                     | –      | –        | –                                        | –                                 | `serve`    |
 * | 2 | yes                  | no                    | –      | –        | –                                        | –                                 | `serve`    |
 * | 3 | yes                  | yes                   | paused | –        | –                                        | –                                 | `hold` (paused) |
 * | 4 | yes                  | yes                   | –      | tripped  | –                                        | –                                 | `hold` (guard)  |
 * | 5 | yes                  | yes                   | –      | –        | –                                        | no                                | `hold` (wave)   |
 * | 6 | yes                  | yes                   | –      | approved | no                                       | yes                               | `judge`, a change over the limit goes (`ignore`) |
 * | 7 | yes                  | yes                   | –      | rejected | no                                       | yes                               | `judge`, a change over the limit is held, the guard not tripped (`hold`) |
 * | 8 | yes                  | yes                   | –      | otherwise                                   || yes                               | `judge`, a change over the limit trips the guard (`trip`) |
 *
 * A device that offers nothing (its first sync, one in doubt of what it holds, or one holding
 * empty tables after a wipe) always gets current data: there is nothing of its own to keep.
 * After `judge` (afterJudging): over the guard's limit, by `onOver`; else a bulk change (rows
 * added or removed ≥ RELEASE_WINDOW_BULK_ROWS) outside the device's sync window waits for it
 * (held: window); else it is sent. Row 6 with no window to weigh is sent without judging.
 *
 * Whether a change is over the guard's limit (judgeChange), per table, H = the rows the
 * device holds, N = the rows it would hold:
 *
 * | H's table hash equals N's | limit of the table | removed = H − N            | → over when                     |
 * |---------------------------|--------------------|----------------------------|---------------------------------|
 * | yes                       | –                  | 0                          | never                           |
 * | no                        | off                | –                          | never                           |
 * | no                        | p % and floor f    | max(0, H − N)              | removed ≥ f and removed > p % × H |
 */
import type { TableDigest } from '../../contract/canonical.ts';

export type GuardState = 'clear' | 'tripped' | 'approved' | 'rejected';

/** What a held answer tells the edge, signed into its manifest. */
export type HoldReason = 'paused' | 'guard' | 'wave' | 'window';

export interface ReleaseKnown {
  /** The request offered the global hash of what the device holds. */
  offersHeld: boolean;
  /** The answer's data differs from what the device holds. */
  changes: boolean;
  paused: boolean;
  guard: GuardState;
  /** The device's location changed since the guard last tripped (the change it held). */
  changedSinceMark: boolean;
  /** The running rollout reached the device (waves.ts); true when there is none. */
  reached: boolean;
  /** The device's cohort has a sync window and now is outside it. */
  outsideWindow: boolean;
}

export type ReleaseDecision =
  | { kind: 'serve' }
  | { kind: 'hold'; reason: HoldReason }
  | { kind: 'judge'; onOver: 'trip' | 'hold' | 'ignore'; window: boolean };

export function releaseDecision(k: ReleaseKnown): ReleaseDecision {
  if (!k.offersHeld || !k.changes) return { kind: 'serve' };
  if (k.paused) return { kind: 'hold', reason: 'paused' };
  if (k.guard === 'tripped') return { kind: 'hold', reason: 'guard' };
  if (!k.reached) return { kind: 'hold', reason: 'wave' };
  const decided = !k.changedSinceMark && (k.guard === 'approved' || k.guard === 'rejected');
  const onOver = !decided ? 'trip' : k.guard === 'approved' ? 'ignore' : 'hold';
  if (onOver === 'ignore' && !k.outsideWindow) return { kind: 'serve' };
  return { kind: 'judge', onOver, window: k.outsideWindow };
}

/** After judging: trip the guard, hold this device (a rejected change), wait for the window, or send. */
export function afterJudging(
  judge: { onOver: 'trip' | 'hold' | 'ignore'; window: boolean },
  verdict: Verdict | undefined,
  bulk: number,
  bulkRows: number,
): 'trip' | 'hold' | 'window' | 'serve' {
  if (verdict && judge.onOver !== 'ignore') return judge.onOver;
  if (judge.window && bulk >= bulkRows) return 'window';
  return 'serve';
}

/** Rows a change adds or removes, over every table whose content changed (an edit adds none). */
export function bulkOf(held: readonly TableDigest[], next: readonly TableDigest[]): number {
  let rows = 0;
  for (const h of held) {
    const n = next.find((t) => t.name === h.name);
    if (n && n.sha256 !== h.sha256) rows += Math.abs(n.rowCount - h.rowCount);
  }
  return rows;
}

/** The most a change may remove of one table: `percent` of what the device holds, and at least `minRows`. */
export interface TableLimit {
  percent: number;
  minRows: number;
}

/** Per table; a table without an entry is not guarded. */
export type GuardLimits = ReadonlyMap<string, TableLimit>;

export interface Verdict {
  table: string;
  held: number;
  next: number;
  removed: number;
  limit: TableLimit;
}

/** The first table whose change is over its limit, or undefined when the change may go. */
export function judgeChange(
  held: readonly TableDigest[],
  next: readonly TableDigest[],
  limits: GuardLimits,
): Verdict | undefined {
  for (const h of held) {
    const n = next.find((t) => t.name === h.name);
    const limit = limits.get(h.name);
    if (!n || !limit || n.sha256 === h.sha256) continue;
    const removed = Math.max(0, h.rowCount - n.rowCount);
    if (removed >= limit.minRows && removed * 100 > limit.percent * h.rowCount)
      return { table: h.name, held: h.rowCount, next: n.rowCount, removed, limit };
  }
  return undefined;
}

/**
 * The limits from the settings: `percent` and `minRows` for every table, and per table
 * `name:percent:minRows` or `name:off` (validated by config.ts). Percent 0: no table guarded.
 */
export function guardLimits(
  tables: readonly string[],
  percent: number,
  minRows: number,
  overrides: readonly { table: string; limit: TableLimit | 'off' }[],
): GuardLimits {
  const limits = new Map<string, TableLimit>();
  if (percent > 0) for (const t of tables) limits.set(t, { percent, minRows });
  for (const o of overrides) {
    if (o.limit === 'off') limits.delete(o.table);
    else limits.set(o.table, o.limit);
  }
  return limits;
}
