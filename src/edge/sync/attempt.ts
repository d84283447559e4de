/**
 * One attempt at a sync: what it knows as it goes (each stage reads it and adds to it), how
 * it begins (what the edge holds, and what of it the request may offer Central) and how it
 * ends: its ledger row, its ack to Central and its SyncResult, the one place each is made.
 * A failure is a result, not a throw: the transaction rolled back, so the local data is
 * exactly as it was, and the ledger and the Failed ack say why.
 */
import type { KeyObject } from 'node:crypto';
import type { TableDigest } from '../../contract/canonical.ts';
import type { DataModel } from '../../contract/data-model.ts';
import { SnapshotFormatError } from '../../contract/snapshot-reader.ts';
import { storableText, type AckBody, type Manifest } from '../../contract/wire.ts';
import type { Pool, PoolClient } from '../../platform/db.ts';
import { AppError, normalizeError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import type { EdgeMetrics } from '../metrics.ts';
import type { AckOutcome, SyncResult, SyncState, TableProgress } from '../model.ts';
import {
  failedSinceLastLoad,
  finishSync,
  getState,
  lastAppliedTables,
  setState,
  type SyncFinish,
} from '../repo/ledger.ts';
import { loadModeOf, type LoadMode } from '../repo/tables.ts';
import { acknowledge } from './acks.ts';
import { heldFacts } from './checks.ts';
import type { CentralClient } from './client.ts';
import { reasonOf } from './errors.ts';
import type { ManifestClock } from './manifest-clock.ts';
import { DOUBT_CODES, DOUBT_REASONS, offerFor, type Offer } from './plan.ts';
import { SyncStats } from './stats.ts';

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
  /** DATA_LIFETIME_DAYS: data no sync confirmed for this long is emptied (0 or absent: kept). */
  dataLifetimeDays?: number;
}

export interface RunOptions {
  /** Offer Central nothing the edge holds, so every table is sent and reloaded. */
  full?: boolean;
  /** Told how each table's load advances (a terminal shows it). */
  progress?: (p: TableProgress) => void;
}

export interface Attempt {
  deps: SyncDeps;
  client: PoolClient;
  syncId: string;
  log: Logger;
  started: number;
  /** The one writer of the transfer's counts and the answer's hash. */
  stats: SyncStats;
  state: SyncState;
  /** What the request offers Central of what this edge holds (plan.ts, offerFor). */
  offer: Offer;
  /** How a table may be loaded on its own (repo/tables.ts); `whole`: every table is emptied and reloaded. */
  loadMode: LoadMode;
  /** The tables of the last applied manifest, when offered. */
  held: { tables: TableDigest[] } | undefined;
  progress: ((p: TableProgress) => void) | undefined;
  body?: AsyncGenerator<Uint8Array>;
  manifest?: Manifest;
  /** The manifest's lifetime, on Central's clock (manifest-clock.ts). */
  clock?: ManifestClock;
}

export async function beginAttempt(
  deps: SyncDeps,
  client: PoolClient,
  syncId: string,
  log: Logger,
  options: RunOptions,
): Promise<Attempt> {
  const started = performance.now();
  const full = options.full === true;
  const state = await getState(client);
  // What this edge holds is offered to Central unless a failure since its last load cast
  // doubt on it (plan.ts, DOUBT_CODES): then the next sync reloads everything.
  const inDoubt = !full && (await failedSinceLastLoad(client, syncId, DOUBT_CODES, DOUBT_REASONS));
  const loadMode = await loadModeOf(client);
  deps.metrics.recordLoadMode(loadMode);
  const offer = offerFor(full, inDoubt, loadMode);
  const held = offer.tables ? await lastAppliedTables(client) : undefined;
  const stats = new SyncStats();
  return {
    deps,
    client,
    syncId,
    log,
    started,
    stats,
    state,
    offer,
    loadMode,
    held,
    progress: options.progress,
  };
}

export const elapsed = (a: Attempt): number => Math.round(performance.now() - a.started);

type ResultFields = Pick<SyncResult, 'rowsLoaded' | 'tables' | 'ack'> &
  Partial<Pick<SyncResult, 'tablesLoaded' | 'error' | 'held' | 'wiped'>>;

/** A malformed stream is Central's fault; anything else unnamed failed in the local load. */
export function asAppError(err: unknown): AppError {
  if (err instanceof SnapshotFormatError)
    return new AppError('SNAPSHOT_INVALID', err.message, { cause: err });
  return normalizeError(err, 'LOAD_FAILED');
}

/** The scope is as the edge holds it: nothing loaded, the check recorded and acknowledged. */
export async function recordUnchanged(a: Attempt, m: Manifest, log: Logger): Promise<SyncResult> {
  const held = a.held ?? (await lastAppliedTables(a.client));
  await finishSync(a.client, a.syncId, {
    ...ledgerRow(a, 'unchanged', 0),
    heldReason: m.held?.reason ?? null,
  });
  await setState(a.client, { lastCheckAt: new Date().toISOString(), ...heldFacts(m) });
  if (m.held)
    log.warn(
      { event: 'sync.held', reason: m.held.reason, since: m.held.since },
      `Central holds a change (${m.held.reason} since ${m.held.since}): this edge keeps the data it holds`,
    );
  else log.info({ event: 'sync.unchanged', globalSha256: m.globalSha256 }, 'scope unchanged, nothing loaded');
  const tables = held?.tables ?? [];
  const ack = await acknowledgeAttempt(a, 'Success', tables, null, log);
  return resultOf(a, 'unchanged', { rowsLoaded: 0, tables, ack, ...(m.held ? { held: m.held } : {}) });
}

export async function recordFailure(a: Attempt, err: AppError): Promise<SyncResult> {
  if (err.code === 'SCHEMA_VERSION_MISMATCH') {
    a.log.error({ event: 'sync.alert', alert: true, code: err.code }, err.message);
  }
  await finishSync(a.client, a.syncId, {
    ...ledgerRow(a, 'failed', 0),
    errorCode: err.code,
    errorReason: reasonOf(err) ?? null,
    errorText: err.message.slice(0, 4000),
  });
  let ack: AckOutcome = 'none';
  if (a.manifest) {
    // The rollback left the ledger as it was when this sync began.
    const held = a.held ?? (await lastAppliedTables(a.client));
    ack = await acknowledgeAttempt(a, 'Failed', held?.tables ?? [], `${err.code}: ${err.message}`, a.log);
  }
  return resultOf(a, 'failed', {
    rowsLoaded: 0,
    tables: [],
    ack,
    error: { code: err.code, message: err.message },
  });
}

export async function acknowledgeAttempt(
  a: Attempt,
  status: 'Success' | 'Failed',
  tables: readonly TableDigest[],
  error: string | null,
  log: Logger,
): Promise<AckOutcome> {
  return acknowledge(a.client, a.deps.central, ackBody(a, status, tables, error), log);
}

export function resultOf(a: Attempt, status: SyncResult['status'], fields: ResultFields): SyncResult {
  return {
    syncId: a.syncId,
    status,
    manifestId: a.manifest?.manifestId ?? null,
    durationMs: elapsed(a),
    transfer: { ...a.stats.counts(), bytesReceived: a.stats.bytesReceived },
    ...fields,
  };
}

export function ledgerRow(a: Attempt, status: SyncFinish['status'], rows: number): SyncFinish {
  const m = a.manifest;
  return {
    status,
    manifestId: m?.manifestId ?? null,
    durationMs: elapsed(a),
    globalSha256: m?.globalSha256 ?? null,
    rowsLoaded: rows,
    bytesReceived: a.stats.bytesReceived,
    payloadSha256: status === 'failed' ? null : a.stats.payloadSha256(),
  };
}

function ackBody(
  a: Attempt,
  status: 'Success' | 'Failed',
  tables: readonly TableDigest[],
  error: string | null,
): AckBody {
  return {
    manifestId: a.manifest!.manifestId,
    mac: a.deps.mac,
    status,
    localCounts: Object.fromEntries(tables.map((x) => [x.name, x.rowCount])),
    localChecksums: Object.fromEntries(tables.map((x) => [x.name, x.sha256])),
    durationMs: elapsed(a),
    error: error === null ? null : storableText(error.slice(0, 4000)),
    payloadSha256: status === 'Success' ? a.stats.payloadSha256() : null,
  };
}
