/**
 * One sync, the only code path for the CLI, the schedule and POST /sync/now, in stages:
 * pull (the signed manifest) → validate → recordUnchanged (and stop) or apply (one
 * transaction that loads, checks foreign keys, verifies hashes, writes the ledger and
 * commits) → acknowledge. Any failure rolls the transaction back: the local data stays
 * exactly as it was, and recordFailure writes the ledger row and the Failed ack.
 */
import { createHash, type KeyObject } from 'node:crypto';
import type { TableDigest } from '../../contract/canonical.ts';
import { verifyManifest } from '../../contract/signing.ts';
import { readSnapshot, SnapshotFormatError, type SnapshotItem } from '../../contract/snapshot-reader.ts';
import type { DataModel } from '../../contract/data-model.ts';
import { COPY_SESSION_SETTINGS_SQL } from '../../contract/tables.ts';
import { INLINE_PIECES_HEADER, storableText, type AckBody, type Manifest } from '../../contract/wire.ts';
import type { Pool, PoolClient } from '../../platform/db.ts';
import { AppError, normalizeError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import { step } from '../../platform/step.ts';
import {
  advisoryUnlock,
  closeInterruptedSyncs,
  finishSync,
  getState,
  insertSyncStart,
  insertSyncTables,
  lastAppliedTables,
  failedSinceLastLoad,
  manifestApplied,
  setState,
  tryAdvisoryLock,
  type SyncFinish,
} from '../repo/ledger.ts';
import { changedTables, notifyDataChanged } from '../repo/news.ts';
import { loadModeOf, type LoadMode } from '../repo/tables.ts';
import { acknowledge, flushPendingAcks } from './acks.ts';
import { pendingReport } from './device-report.ts';
import { ManifestClock, newRequestNonce } from './manifest-clock.ts';
import type { CentralClient } from './client.ts';
import {
  DOUBT_CODES,
  heldFacts,
  refuseStaleOrForeign,
  validateManifest,
  verifyLoaded,
  KEPT_TABLES_BROKEN,
} from './checks.ts';
import { counted, loadPlan, type Transfer } from './load.ts';
import { inlinePieces, PieceTransfer } from './transfer.ts';
import { planLoad, type TablePlan, type TransferStats } from './plan.ts';
import { heldPieces, replaceHeldPieces } from '../repo/pieces.ts';
import type { EdgeMetrics } from '../metrics.ts';
import type { AckOutcome, SyncResult, SyncState, SyncTrigger, TableProgress } from '../model.ts';

/** One sync at a time per edge database, across processes. */
export const SYNC_LOCK_KEY = 0x64627379; // "dbsy"

export interface SyncDeps {
  pool: Pool;
  central: CentralClient;
  mac: string;
  log: Logger;
  metrics: EdgeMetrics;
  /** Central's manifest keys this edge trusts, by key id. */
  publicKeys: ReadonlyMap<string, KeyObject>;
  /** The longest a sync may take, pull to commit; its transaction and lock end with it. */
  deadlineMs: number;
  /** The data-model version this edge's tables are at (its migrations bring them there). */
  model: DataModel;
  /** Pause before resuming a transfer that brought nothing (doubled each time); tests shorten it. */
  resumeDelayMs?: number;
}

/** What one attempt knows as it goes; each stage reads it and adds to it. */
interface Attempt {
  client: PoolClient;
  syncId: string;
  log: Logger;
  started: number;
  /** The snapshot answer's bytes (its hash is the ack's payloadSha256). */
  transfer: Required<Transfer>;
  /** The pieces' bytes, over every fetch. */
  pieces: Transfer;
  stats: TransferStats;
  state: SyncState;
  /** Offer Central the hashes of what this edge holds (not while they are in doubt, nor with --full). */
  offerHeld: boolean;
  /** How a table may be loaded on its own (repo/tables.ts); `whole`: every table is emptied and reloaded. */
  loadMode: LoadMode;
  /** The tables of the last applied manifest, when offered. */
  held: { tables: TableDigest[] } | undefined;
  body?: AsyncGenerator<Uint8Array>;
  manifest?: Manifest;
  /** The manifest's lifetime, on Central's clock (manifest-clock.ts). */
  clock?: ManifestClock;
  progress?: ((p: TableProgress) => void) | undefined;
}

export interface RunOptions {
  full?: boolean;
  progress?: (p: TableProgress) => void;
}

type ResultFields = Pick<SyncResult, 'rowsLoaded' | 'tables' | 'ack'> &
  Partial<Pick<SyncResult, 'tablesLoaded' | 'error'>>;

const noTransfer = (): TransferStats => ({
  fetches: 0,
  piecesFetched: 0,
  piecesReused: 0,
  piecesKept: 0,
  piecesRefetched: 0,
  rowsDeleted: 0,
});

/** A malformed stream is Central's fault; anything else unnamed failed in the local load. */
function asAppError(err: unknown): AppError {
  if (err instanceof SnapshotFormatError)
    return new AppError('SNAPSHOT_INVALID', err.message, { cause: err });
  return normalizeError(err, 'LOAD_FAILED');
}

const elapsed = (a: Attempt) => Math.round(performance.now() - a.started);

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
        const interrupted = await closeInterruptedSyncs(client);
        if (interrupted > 0)
          this.#deps.log.warn(
            { event: 'sync.interrupted', count: interrupted },
            'closed syncs a dead process left running',
          );
        await flushPendingAcks(client, this.#deps.central, this.#deps.log);
        const syncId = await insertSyncStart(client, trigger);
        const log = this.#deps.log.child({ syncId, trigger, device: this.#deps.mac });
        const result = await this.#logged(log, () => this.#attempt(client!, syncId, log, options));
        this.#deps.metrics.record(result);
        return result;
      } finally {
        await advisoryUnlock(client, SYNC_LOCK_KEY).catch((err: Error) => (broken = err));
      }
    } finally {
      client?.release(broken);
      this.#running = false;
    }
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
    const a = await this.#begin(client, syncId, log, options.full === true);
    a.progress = options.progress;
    try {
      const { manifest, items } = await this.#pull(a);
      const mlog = log.child({ manifestId: manifest.manifestId });
      await step(mlog, 'sync.validate', {}, () => this.#validate(a, manifest));
      const unchanged =
        !manifest.rowsIncluded || (a.offerHeld && manifest.globalSha256 === a.state.lastGlobalSha256);
      if (unchanged) return await this.#recordUnchanged(a, manifest, items, mlog);
      const inline = await inlinePieces(items);
      if (!inline) await drain(items);
      const plan = await step(mlog, 'sync.plan', {}, () => this.#plan(a, manifest));
      const transfer = new PieceTransfer(
        {
          pool: this.#deps.pool,
          central: this.#deps.central,
          mac: this.#deps.mac,
          log: mlog,
          deadlineAt: Date.now() + this.#deps.deadlineMs - elapsed(a),
          clock: a.clock!,
          resumeDelayMs: this.#deps.resumeDelayMs ?? 1000,
        },
        manifest,
        plan,
        a.pieces,
        a.stats,
      );
      let applied;
      try {
        await step(mlog, 'sync.fetch', {}, async () => {
          await transfer.prepare();
          await transfer.open(inline);
        });
        applied = await this.#applyResuming(a, manifest, plan, transfer, mlog);
      } finally {
        await transfer.close();
      }
      await transfer
        .clear()
        .catch((err: unknown) => mlog.warn({ event: 'sync.staging', err }, 'could not clear staged pieces'));
      const ack = await this.#acknowledge(a, 'Success', applied.tables, null, mlog);
      return this.#result(a, 'success', { ...applied, ack });
    } catch (err) {
      return await this.#recordFailure(a, asAppError(err));
    } finally {
      // A sync that stopped reading must close the response, or Central keeps streaming into it.
      await a.body?.return(undefined).catch(() => undefined);
    }
  }

  async #begin(client: PoolClient, syncId: string, log: Logger, full: boolean): Promise<Attempt> {
    const started = performance.now();
    const state = await getState(client);
    // What this edge holds is offered to Central unless a failure since its last load cast
    // doubt on it (DOUBT_CODES): then the next sync reloads everything.
    const offerHeld = !full && !(await failedSinceLastLoad(client, syncId, DOUBT_CODES, KEPT_TABLES_BROKEN));
    // Without a way to load a table alone, parents cannot be reloaded under kept children: reload all.
    const loadMode = await loadModeOf(client);
    this.#deps.metrics.recordLoadMode(loadMode);
    const held = offerHeld && loadMode !== 'whole' ? await lastAppliedTables(client) : undefined;
    const transfer: Required<Transfer> = { bytes: 0, hash: createHash('sha256') };
    const pieces: Transfer = { bytes: 0 };
    return {
      client,
      syncId,
      log,
      started,
      transfer,
      pieces,
      stats: noTransfer(),
      state,
      offerHeld,
      loadMode,
      held,
    };
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

  /** The snapshot stream, up to its signed manifest. */
  async #pull(a: Attempt): Promise<{ manifest: Manifest; items: AsyncGenerator<SnapshotItem> }> {
    const known = a.offerHeld ? (a.state.lastGlobalSha256 ?? null) : null;
    const nonce = newRequestNonce();
    const pending = await pendingReport(a.client, a.state);
    const asked = performance.now();
    a.body = await step(a.log, 'sync.pull', {}, () =>
      this.#deps.central.requestSnapshot(
        {
          mac: this.#deps.mac,
          knownGlobalSha256: known,
          pieces: true,
          nonce,
          ...(pending ? { report: pending.report } : {}),
          ...(a.held
            ? { knownTables: Object.fromEntries(a.held.tables.map((t) => [t.name, t.sha256])) }
            : {}),
        },
        // Offering nothing, it loads every piece: they may as well come in this answer.
        known === null && !a.held ? { [INLINE_PIECES_HEADER]: '1' } : {},
        Date.now() + this.#deps.deadlineMs,
      ),
    );
    const items = readSnapshot(counted(a.body, a.transfer));
    const first = await items.next();
    if (first.done || first.value.type !== 'manifest') throw new AppError('SNAPSHOT_INVALID', 'no manifest');
    const signed = verifyManifest(first.value.manifest, first.value.signature, this.#deps.publicKeys);
    if (signed !== 'ok') throw signatureRefusal(signed, first.value.signature?.keyId, this.#deps.publicKeys);
    a.manifest = first.value.manifest;
    a.clock = new ManifestClock(a.manifest, nonce, asked);
    // Central answered, so it stored the report: not sent again until it changes.
    if (pending) await setState(a.client, { reportedSha256: pending.sha256 });
    const skew = a.clock.skewNote();
    if (skew) a.log.warn({ event: 'clock.skew', skewMs: a.clock.skewMs }, skew);
    return { manifest: a.manifest, items };
  }

  async #validate(a: Attempt, m: Manifest): Promise<void> {
    validateManifest(m, this.#deps.model);
    a.clock!.check('before it could be applied');
    refuseStaleOrForeign(m, a.state);
    if (await manifestApplied(a.client, m.manifestId)) {
      throw new AppError('MANIFEST_ALREADY_APPLIED', `manifest ${m.manifestId} was applied before`);
    }
  }

  async #recordUnchanged(
    a: Attempt,
    m: Manifest,
    items: AsyncGenerator<SnapshotItem>,
    log: Logger,
  ): Promise<SyncResult> {
    await drain(items);
    const held = a.held ?? (await lastAppliedTables(a.client));
    await finishSync(a.client, a.syncId, this.#ledgerRow(a, 'unchanged', 0));
    await setState(a.client, { lastCheckAt: new Date().toISOString(), ...heldFacts(m) });
    log.info({ event: 'sync.unchanged', globalSha256: m.globalSha256 }, 'scope unchanged, nothing loaded');
    const tables = held?.tables ?? [];
    const ack = await this.#acknowledge(a, 'Success', tables, null, log);
    return this.#result(a, 'unchanged', { rowsLoaded: 0, tables, ack });
  }

  /**
   * The load, reading the pieces as they arrive; if the transfer breaks, the rest is fetched
   * into staging (resuming after cuts) and the load runs again from there.
   */
  async #applyResuming(
    a: Attempt,
    m: Manifest,
    plan: readonly TablePlan[],
    transfer: PieceTransfer,
    log: Logger,
  ) {
    try {
      return await this.#apply(a, m, plan, transfer, log);
    } catch (err) {
      await transfer.close();
      if (!transfer.resumable(err)) throw err;
      log.warn(
        { event: 'sync.resume', err, fetched: a.stats.piecesFetched },
        'the transfer broke during the load; fetching the rest into staging, then loading again',
      );
      await step(log, 'sync.resume', {}, async (open) => {
        await transfer.resume();
        open.annotate({ ...a.stats });
      });
      return await this.#apply(a, m, plan, transfer, log);
    }
  }

  /** The one transaction: load, check, verify, ledger, commit; rolled back on any failure. */
  async #apply(
    a: Attempt,
    m: Manifest,
    plan: readonly TablePlan[],
    transfer: PieceTransfer,
    log: Logger,
  ): Promise<{ rowsLoaded: number; tablesLoaded: string[]; tables: TableDigest[] }> {
    const { client } = a;
    await client.query('BEGIN');
    try {
      await client.query(COPY_SESSION_SETTINGS_SQL);
      a.stats.rowsDeleted = 0;
      const loaded = await step(log, 'sync.load', {}, () =>
        loadPlan(client, transfer, plan, a.stats, {
          log,
          mode: a.loadMode,
          metrics: this.#deps.metrics,
          progress: a.progress,
        }),
      );
      const tables = await step(log, 'sync.verify', {}, () =>
        verifyLoaded(client, m, this.#deps.model, this.#deps.mac),
      );
      await step(log, 'sync.commit', {}, async () => {
        // Checked again at the end: a slow link must not stretch a manifest's lifetime.
        a.clock!.check('before commit');
        const before = a.held ?? (await lastAppliedTables(client));
        await insertSyncTables(client, a.syncId, tables);
        for (const t of plan)
          if (t.mode !== 'keep')
            await replaceHeldPieces(client, t.def.name, m.schemaVersion, t.expected.sha256, t.pieces);
        await finishSync(client, a.syncId, this.#ledgerRow(a, 'success', loaded.rows));
        const now = new Date().toISOString();
        const changed = changedTables(before?.tables, tables);
        if (changed.length > 0)
          await notifyDataChanged(client, { manifestId: m.manifestId, tables: changed, committedAt: now });
        await setState(client, {
          lastManifestId: m.manifestId,
          lastGlobalSha256: m.globalSha256,
          lastSuccessAt: now,
          lastCheckAt: now,
          ...heldFacts(m),
          // The load verified every table before this commit: drift reported before is gone.
          ...(a.state.driftTables ? { driftTables: '', driftCheckedAt: now } : {}),
        });
        await client.query('COMMIT');
      });
      return { rowsLoaded: loaded.rows, tablesLoaded: loaded.tables, tables };
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    }
  }

  async #recordFailure(a: Attempt, err: AppError): Promise<SyncResult> {
    if (err.code === 'SCHEMA_VERSION_MISMATCH') {
      a.log.error({ event: 'sync.alert', alert: true, code: err.code }, err.message);
    }
    await finishSync(a.client, a.syncId, {
      ...this.#ledgerRow(a, 'failed', 0),
      errorCode: err.code,
      errorText: err.message.slice(0, 4000),
    });
    let ack: AckOutcome = 'none';
    if (a.manifest) {
      // The rollback left the ledger as it was when this sync began.
      const held = a.held ?? (await lastAppliedTables(a.client));
      ack = await this.#acknowledge(a, 'Failed', held?.tables ?? [], `${err.code}: ${err.message}`, a.log);
    }
    return this.#result(a, 'failed', {
      rowsLoaded: 0,
      tables: [],
      ack,
      error: { code: err.code, message: err.message },
    });
  }

  async #acknowledge(
    a: Attempt,
    status: 'Success' | 'Failed',
    tables: readonly TableDigest[],
    error: string | null,
    log: Logger,
  ): Promise<AckOutcome> {
    return acknowledge(a.client, this.#deps.central, this.#ackBody(a, status, tables, error), log);
  }

  /** The one place a SyncResult is made. */
  #result(a: Attempt, status: SyncResult['status'], fields: ResultFields): SyncResult {
    return {
      syncId: a.syncId,
      status,
      manifestId: a.manifest?.manifestId ?? null,
      durationMs: elapsed(a),
      transfer: { ...a.stats, bytesReceived: a.transfer.bytes + a.pieces.bytes },
      ...fields,
    };
  }

  #ledgerRow(a: Attempt, status: SyncFinish['status'], rows: number): SyncFinish {
    const m = a.manifest;
    return {
      status,
      manifestId: m?.manifestId ?? null,
      durationMs: elapsed(a),
      globalSha256: m?.globalSha256 ?? null,
      rowsLoaded: rows,
      bytesReceived: a.transfer.bytes + a.pieces.bytes,
      payloadSha256: status === 'failed' ? null : a.transfer.hash.copy().digest('hex'),
    };
  }

  #ackBody(
    a: Attempt,
    status: 'Success' | 'Failed',
    tables: readonly TableDigest[],
    error: string | null,
  ): AckBody {
    return {
      manifestId: a.manifest!.manifestId,
      mac: this.#deps.mac,
      status,
      localCounts: Object.fromEntries(tables.map((x) => [x.name, x.rowCount])),
      localChecksums: Object.fromEntries(tables.map((x) => [x.name, x.sha256])),
      durationMs: elapsed(a),
      error: error === null ? null : storableText(error.slice(0, 4000)),
      payloadSha256: status === 'Success' ? a.transfer.hash.copy().digest('hex') : null,
    };
  }
}

/** Reads a snapshot answer to its end frame, which the reader checks. */
async function drain(items: AsyncGenerator<SnapshotItem>): Promise<void> {
  for await (const _ of items) {
    /* to the end */
  }
}

/** Why a manifest's signature was refused, naming the keys when the edge trusts none that signed it. */
function signatureRefusal(
  result: 'unsigned' | 'unknown-key' | 'invalid',
  keyId: string | undefined,
  trusted: ReadonlyMap<string, unknown>,
): AppError {
  const why =
    result === 'unknown-key'
      ? `signed with key ${keyId}, which this edge does not trust (MANIFEST_PUBLIC_KEYS holds ${[...trusted.keys()].join(', ')}): ` +
        "add Central's public key, the MANIFEST_PUBLIC_KEYS line `dbupdate central keygen` printed with its MANIFEST_SIGNING_KEY"
      : result === 'unsigned'
        ? 'the manifest is unsigned'
        : `the signature by key ${keyId} does not match the manifest (changed on the way?)`;
  return new AppError('MANIFEST_SIGNATURE_INVALID', `manifest signature check failed: ${why}`);
}
