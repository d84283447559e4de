/**
 * One sync, the only code path for the CLI, the schedule and POST /sync/now, in stages:
 * pull (the signed manifest) → validate → recordUnchanged (and stop) or apply (one
 * transaction that loads, checks foreign keys, verifies hashes, writes the ledger and
 * commits) → acknowledge. Any failure rolls the transaction back: the local data stays
 * exactly as it was, and recordFailure writes the ledger row and the Failed ack.
 *
 * docs/architecture-edge.md walks it file by file.
 */
import type { Manifest } from '../../contract/wire.ts';
import type { SnapshotItem } from '../../contract/snapshot-reader.ts';
import type { PoolClient } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import { step } from '../../platform/step.ts';
import type { EdgeMetrics } from '../metrics.ts';
import type { SyncResult, SyncTrigger } from '../model.ts';
import {
  advisoryUnlock,
  closeInterruptedSyncs,
  getState,
  insertSyncStart,
  tryAdvisoryLock,
} from '../repo/ledger.ts';
import { expireIfStale } from './lifetime.ts';
import { heldPieces } from '../repo/pieces.ts';
import { flushPendingAcks } from './acks.ts';
import { apply, type Applied } from './load.ts';
import {
  acknowledgeAttempt,
  asAppError,
  beginAttempt,
  elapsed,
  recordFailure,
  recordUnchanged,
  resultOf,
  type Attempt,
  type RunOptions,
  type SyncDeps,
} from './attempt.ts';
import { isUnchanged, planLoad, type TablePlan } from './plan.ts';
import { drain, pull, validate } from './pull.ts';
import { inlinePieces, PieceTransfer } from './transfer.ts';

export type { RunOptions, SyncDeps } from './attempt.ts';

/** One sync at a time per edge database, across processes. */
export const SYNC_LOCK_KEY = 0x64627379; // "dbsy"

export class Syncer {
  readonly #deps: SyncDeps;
  #running = false;

  constructor(deps: SyncDeps) {
    this.#deps = deps;
  }

  get running(): boolean {
    return this.#running;
  }

  get metrics(): EdgeMetrics {
    return this.#deps.metrics;
  }

  /**
   * `full`: offer Central nothing the edge holds, so every table is sent and reloaded.
   * `progress`: told how each table's load advances (a terminal shows it).
   */
  async run(trigger: SyncTrigger, options: RunOptions = {}): Promise<SyncResult> {
    if (this.#running) throw new AppError('SYNC_IN_PROGRESS', 'a sync is already running in this process');
    this.#running = true;
    let client: PoolClient | undefined;
    let broken: Error | undefined;
    try {
      client = await this.#deps.pool.connect();
      if (!(await tryAdvisoryLock(client, SYNC_LOCK_KEY))) {
        throw new AppError('SYNC_IN_PROGRESS', 'another process is syncing this edge database');
      }
      try {
        return await this.#locked(client, trigger, options);
      } finally {
        await advisoryUnlock(client, SYNC_LOCK_KEY).catch((err: Error) => (broken = err));
      }
    } finally {
      client?.release(broken);
      this.#running = false;
    }
  }

  /** Holding the sync lock: what a dead process left is closed, then this sync's ledger row opened. */
  async #locked(client: PoolClient, trigger: SyncTrigger, options: RunOptions): Promise<SyncResult> {
    const interrupted = await closeInterruptedSyncs(client);
    if (interrupted > 0)
      this.#deps.log.warn(
        { event: 'sync.interrupted', count: interrupted },
        'closed syncs a dead process left running',
      );
    await flushPendingAcks(client, this.#deps.central, this.#deps.log);
    const syncId = await insertSyncStart(client, trigger);
    const log = this.#deps.log.child({ syncId, trigger, device: this.#deps.mac });
    const result = await this.#logged(log, () => this.#attempt(client, syncId, log, options));
    this.#deps.metrics.record(result);
    if (result.status === 'failed' && this.#deps.dataLifetimeDays)
      await expireIfStale(client, this.#deps.model, this.#deps.dataLifetimeDays, await getState(client), log);
    return result;
  }

  /**
   * The sync as one step whose finish event tells its outcome: a failed sync is a result, not
   * a throw, and its step must say `error` with the code, whoever started it (schedule, CLI, /sync/now).
   */
  async #logged(log: Logger, attempt: () => Promise<SyncResult>): Promise<SyncResult> {
    return step(log, 'sync', {}, async (open) => {
      const result = await attempt();
      open.annotate({ status: result.status, manifestId: result.manifestId, rowsLoaded: result.rowsLoaded });
      if (result.error) open.finish(new AppError(result.error.code, result.error.message));
      return result;
    });
  }

  async #attempt(client: PoolClient, syncId: string, log: Logger, options: RunOptions): Promise<SyncResult> {
    const a = await beginAttempt(this.#deps, client, syncId, log, options);
    try {
      const { manifest, items } = await pull(a);
      const mlog = log.child({ manifestId: manifest.manifestId });
      await step(mlog, 'sync.validate', {}, () => validate(a, manifest));
      if (isUnchanged(manifest, a.offer, a.state)) {
        await drain(items);
        return await recordUnchanged(a, manifest, mlog);
      }
      const applied = await this.#load(a, manifest, items, mlog);
      if (manifest.wipe)
        mlog.warn(
          { event: 'sync.wiped', requestedAt: manifest.wipe.requestedAt },
          'Central ordered this device to hold no data: every table is empty now',
        );
      const ack = await acknowledgeAttempt(a, 'Success', applied.tables, null, mlog);
      return resultOf(a, 'success', { ...applied, ack, ...(manifest.wipe ? { wiped: true } : {}) });
    } catch (err) {
      return await recordFailure(a, asAppError(err));
    } finally {
      // A sync that stopped reading must close the response, or Central keeps streaming into it.
      await a.body?.return(undefined).catch(() => undefined);
    }
  }

  /** Plans the load, then fetches the pieces (or reads those sent inline) into the one transaction. */
  async #load(a: Attempt, m: Manifest, items: AsyncGenerator<SnapshotItem>, log: Logger): Promise<Applied> {
    const inline = await inlinePieces(items);
    if (!inline) await drain(items);
    const plan = await step(log, 'sync.plan', {}, () => this.#plan(a, m));
    const transfer = new PieceTransfer(
      {
        pool: this.#deps.pool,
        central: this.#deps.central,
        mac: this.#deps.mac,
        log,
        deadlineAt: Date.now() + this.#deps.deadlineMs - elapsed(a),
        clock: a.clock!,
        resumeDelayMs: this.#deps.resumeDelayMs ?? 1000,
      },
      m,
      plan,
      a.stats,
    );
    let applied;
    try {
      await step(log, 'sync.fetch', {}, async () => {
        await transfer.prepare();
        await transfer.open(inline);
      });
      applied = await apply(a, m, plan, transfer, log);
    } finally {
      await transfer.close();
    }
    await transfer
      .clear()
      .catch((err: unknown) => log.warn({ event: 'sync.staging', err }, 'could not clear staged pieces'));
    return applied;
  }

  /** Per table: keep, patch or reload; patched only against pieces of what the edge holds now. */
  async #plan(a: Attempt, m: Manifest): Promise<TablePlan[]> {
    const model = this.#deps.model;
    const held = a.held ? await heldPieces(a.client, model.version) : undefined;
    const plan = planLoad(m, model, a.held?.tables, held);
    a.log.info(
      {
        event: 'sync.plan',
        tables: Object.fromEntries(
          plan.map((t) => [t.def.name, `${t.mode} ${t.load.length}/${t.pieces.length}`]),
        ),
      },
      'planned the load',
    );
    return plan;
  }
}
