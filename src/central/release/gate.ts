/**
 * Each answer asks the gate whether its change may go (rule.ts, waves.ts, windows.ts). The
 * gate keeps the release row in memory, read again every few seconds (so every replica
 * follows a pause, a decision or a rollout's progress within that time) and at once after a
 * change made through this process; each read also moves a running rollout on (rollout.ts).
 */
import type { TableDigest } from '../../contract/canonical.ts';
import { withTransaction, type Pool } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import type { CentralMetrics } from '../metrics.ts';
import type { Device } from '../model.ts';
import { scopeVersionParts } from '../sync/scope/version.ts';
import { changeRelease, type ReleaseAction, type ReleaseChange } from './control.ts';
import {
  heldTables,
  insertReleaseEvent,
  readMarks,
  readRelease,
  startRollout,
  tripGuard,
  type ReleaseRow,
} from './repo.ts';
import { moveRollout, rolloutOf } from './rollout.ts';
import {
  afterJudging,
  bulkOf,
  judgeChange,
  releaseDecision,
  type GuardLimits,
  type HoldReason,
  type ReleaseDecision,
  type Verdict,
} from './rule.ts';
import { reached, running, type Staging } from './waves.ts';
import { inWindow, type SyncWindow } from './windows.ts';

export interface Hold {
  reason: HoldReason;
  /** When the freeze began, the guard tripped or the rollout started (for a window: now). */
  since: string;
  /** For a window: when it opens next. */
  until?: string;
}

export interface Asked {
  device: Device;
  /** The device's cohort (device_cohorts), or null. */
  cohort: string | null;
  /** The device's scope version (`<location>:<device row>`). */
  version: string;
  /** The global hash the device offered, or null when it offered none. */
  knownGlobal: string | null | undefined;
  /** The answer's tables as Central holds them now. */
  tables: readonly TableDigest[];
  globalSha256: string;
}

export interface GateOptions {
  pool: Pool;
  limits: GuardLimits;
  staging: Staging;
  windows: ReadonlyMap<string, SyncWindow>;
  windowBulkRows: number;
  metrics: CentralMetrics;
  log: Logger;
  refreshMs: number;
  /** RELEASE_FREEZE_ALERT_MINUTES, for the metric the alert compares with. */
  freezeAlertSeconds: number;
}

export class ReleaseGate {
  readonly #o: GateOptions;
  #row: ReleaseRow | undefined;
  #marks = new Map<string, number>();
  /** Where each location was when the last rollout began. */
  #rolloutMarks = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: GateOptions) {
    this.#o = options;
    options.metrics.observeRelease(() => this.#row, options.freezeAlertSeconds);
  }

  /**
   * Reads the state before the first answer, then again every refreshMs. A database that
   * cannot answer yet (down, not migrated) does not stop Central from starting: /readyz tells
   * that story, and until the state is read every answer is refused with 503 (check).
   */
  async start(): Promise<void> {
    await this.refresh().catch((err: unknown) =>
      this.#o.log.warn(
        { err, event: 'release.refresh' },
        'could not read the release state; answers wait for it',
      ),
    );
    this.#timer = setInterval(() => {
      this.refresh().catch((err: unknown) =>
        this.#o.log.warn(
          { err, event: 'release.refresh' },
          'could not read the release state; keeping the last',
        ),
      );
    }, this.#o.refreshMs);
    this.#timer.unref();
  }

  get staging(): Staging {
    return this.#o.staging;
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #refreshing: Promise<void> | undefined;

  /** One read at a time, shared by whoever asks while it runs (a burst of trips, the timer). */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#read().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  /** After a write: a read that began before it may not see it, so a new one. */
  async #refreshAfterWrite(): Promise<void> {
    await this.#refreshing?.catch(() => undefined);
    await this.refresh();
  }

  async #read(): Promise<void> {
    const row = await readRelease(this.#o.pool);
    if (this.#row?.changed_at.getTime() !== row.changed_at.getTime()) {
      this.#marks = await readMarks(this.#o.pool);
      this.#rolloutMarks = await readMarks(this.#o.pool, 'rollout_marks');
    }
    this.#row = row;
    if (running(rolloutOf(row)) && (await moveRollout(this.#o, row)))
      this.#row = await readRelease(this.#o.pool);
  }

  /** A change through this process is followed at once, not at the next refresh. */
  async change(action: ReleaseAction, actor: string, reason: string | null): Promise<ReleaseChange> {
    const changed = await changeRelease(this.#o.pool, action, actor, reason);
    await this.#refreshAfterWrite();
    return changed;
  }

  /** Whether this answer must tell the device to keep what it holds; undefined: send the change. */
  async check(a: Asked): Promise<Hold | undefined> {
    // Unknown, a freeze could be on: no change goes out until the state is read.
    if (!this.#row)
      throw new AppError(
        'DATABASE_UNAVAILABLE',
        'the release state (release_state, migration 0013) could not be read yet; retry later',
      );
    const changes = typeof a.knownGlobal === 'string' && a.knownGlobal !== a.globalSha256;
    // A change made since the last rollout began starts the next one (a device catching up
    // with one that ended is not a new change).
    const location = Number(scopeVersionParts(a.version).location);
    const newer = location > (this.#rolloutMarks.get(a.device.locationId) ?? 0);
    if (changes && newer && this.#o.staging.wavePercent > 0 && !running(rolloutOf(this.#row)))
      await this.#startRollout();
    const row = this.#row;
    const decision = this.#decide(a, row);
    if (decision.kind === 'serve') return undefined;
    if (decision.kind === 'hold') return this.#held(decision.reason, row, a.cohort);
    const held = await heldTables(this.#o.pool, a.device.id, a.knownGlobal!);
    // What it holds is no longer in the audit: nothing to judge the change against.
    if (!held) return undefined;
    const verdict = judgeChange(held, a.tables, this.#o.limits);
    const next = afterJudging(decision, verdict, bulkOf(held, a.tables), this.#o.windowBulkRows);
    if (next === 'serve') return undefined;
    if (next === 'window') return this.#held('window', row, a.cohort);
    if (next === 'hold') return this.#held('guard', row, a.cohort);
    await this.#trip(verdict!, a.device);
    return this.#held('guard', this.#row, a.cohort);
  }

  #decide(a: Asked, row: ReleaseRow): ReleaseDecision {
    const location = Number(scopeVersionParts(a.version).location);
    const window = a.cohort === null ? undefined : this.#o.windows.get(a.cohort);
    return releaseDecision({
      offersHeld: typeof a.knownGlobal === 'string',
      changes: a.knownGlobal !== a.globalSha256,
      paused: row.paused_at !== null,
      guard: row.guard,
      changedSinceMark: location > (this.#marks.get(a.device.locationId) ?? 0),
      reached: reached(rolloutOf(row), this.#o.staging, a.cohort, a.device.id, Date.now()),
      outsideWindow: window !== undefined && !inWindow(window, new Date()),
    });
  }

  #held(reason: HoldReason, row: ReleaseRow, cohort: string | null): Hold {
    this.#o.metrics.answersHeld.inc({ reason });
    const since = { paused: row.paused_at, guard: row.guard_at, wave: row.rollout_started_at, window: null }[
      reason
    ];
    const opens = reason === 'window' ? windowOpens(this.#o.windows.get(cohort ?? '')) : null;
    return {
      reason,
      since: (since ?? new Date()).toISOString(),
      ...(opens ? { until: opens.toISOString() } : {}),
    };
  }

  async #startRollout(): Promise<void> {
    if (await withTransaction(this.#o.pool, 'BEGIN', (tx) => startRollout(tx))) {
      await insertReleaseEvent(this.#o.pool, 'central', 'rollout_start', {});
      this.#o.log.info({ event: 'release.rollout', step: 'start' }, 'a staged rollout began: canaries first');
    }
    await this.#refreshAfterWrite();
  }

  async #trip(v: Verdict, device: Device): Promise<void> {
    const detail = { ...v, device: device.mac, deviceId: device.id };
    if (await withTransaction(this.#o.pool, 'BEGIN', (tx) => tripGuard(tx, detail))) {
      await insertReleaseEvent(this.#o.pool, 'central', 'trip', detail);
      this.#o.log.warn(
        { event: 'release.guard', alert: true, ...detail },
        `mass-change guard: ${device.mac} would lose ${v.removed} of its ${v.held} ${v.table} rows; every change is held until \`dbupdate central release approve\` or \`reject\``,
      );
    }
    await this.#refreshAfterWrite();
  }
}

/** When a window opens next (UTC). */
function windowOpens(w: SyncWindow | undefined): Date | null {
  if (!w) return null;
  const now = new Date();
  const opens = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), 0, w.from));
  if (opens.getTime() <= now.getTime()) opens.setUTCDate(opens.getUTCDate() + 1);
  return opens;
}
