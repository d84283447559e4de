/**
 * Each answer asks the gate whether its change may go (rule.ts). The gate keeps the release
 * row in memory, read again every few seconds (so every replica follows a pause or a
 * decision within that time) and at once after a change made through this process.
 */
import type { TableDigest } from '../../contract/canonical.ts';
import type { Pool } from '../../platform/db.ts';
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
  tripGuard,
  type ReleaseRow,
} from './repo.ts';
import { judgeChange, releaseDecision, type GuardLimits, type HoldReason, type Verdict } from './rule.ts';

export interface Hold {
  reason: HoldReason;
  /** When the freeze began or the guard tripped. */
  since: string;
}

export interface Asked {
  device: Device;
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
  #timer: NodeJS.Timeout | undefined;

  constructor(options: GateOptions) {
    this.#o = options;
    options.metrics.observeRelease(() => this.#row, options.freezeAlertSeconds);
  }

  /** Reads the state before the first answer, then again every refreshMs. */
  async start(): Promise<void> {
    await this.refresh();
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

  stop(): void {
    clearInterval(this.#timer);
  }

  async refresh(): Promise<void> {
    const row = await readRelease(this.#o.pool);
    if (this.#row?.changed_at.getTime() !== row.changed_at.getTime())
      this.#marks = await readMarks(this.#o.pool);
    this.#row = row;
  }

  /** A change through this process is followed at once, not at the next refresh. */
  async change(action: ReleaseAction, actor: string, reason: string | null): Promise<ReleaseChange> {
    const changed = await changeRelease(this.#o.pool, action, actor, reason);
    await this.refresh();
    return changed;
  }

  /** Whether this answer must tell the device to keep what it holds; undefined: send the change. */
  async check(a: Asked): Promise<Hold | undefined> {
    const row = this.#row;
    if (!row) return undefined;
    const location = Number(scopeVersionParts(a.version).location);
    const decision = releaseDecision({
      offersHeld: typeof a.knownGlobal === 'string',
      changes: a.knownGlobal !== a.globalSha256,
      paused: row.paused_at !== null,
      guard: row.guard,
      changedSinceMark: location > (this.#marks.get(a.device.locationId) ?? 0),
    });
    if (decision.kind === 'serve') return undefined;
    if (decision.kind === 'hold') return this.#held(decision.reason, row);
    const held = await heldTables(this.#o.pool, a.device.id, a.knownGlobal!);
    // What it holds is no longer in the audit: nothing to judge the change against.
    const verdict = held && judgeChange(held, a.tables, this.#o.limits);
    if (!verdict) return undefined;
    await this.#trip(verdict, a.device);
    return this.#held('guard', this.#row!);
  }

  #held(reason: HoldReason, row: ReleaseRow): Hold {
    this.#o.metrics.answersHeld.inc({ reason });
    const since = (reason === 'paused' ? row.paused_at : row.guard_at) ?? new Date();
    return { reason, since: since.toISOString() };
  }

  async #trip(v: Verdict, device: Device): Promise<void> {
    const detail = { ...v, device: device.mac, deviceId: device.id };
    if (await tripGuard(this.#o.pool, detail)) {
      await insertReleaseEvent(this.#o.pool, 'central', 'trip', detail);
      this.#o.log.warn(
        { event: 'release.guard', alert: true, ...detail },
        `mass-change guard: ${device.mac} would lose ${v.removed} of its ${v.held} ${v.table} rows; every change is held until \`dbupdate central release approve\` or \`reject\``,
      );
    }
    await this.refresh();
  }
}
