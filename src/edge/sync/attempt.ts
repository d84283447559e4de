/**
 * One attempt at a sync: what it knows as it goes (each stage reads it and adds to it), and
 * its beginning: what the edge holds, and what of it the request may offer Central.
 */
import type { KeyObject } from 'node:crypto';
import type { TableDigest } from '../../contract/canonical.ts';
import type { DataModel } from '../../contract/data-model.ts';
import type { Manifest } from '../../contract/wire.ts';
import type { Pool, PoolClient } from '../../platform/db.ts';
import type { Logger } from '../../platform/logger.ts';
import type { EdgeMetrics } from '../metrics.ts';
import type { SyncState, TableProgress } from '../model.ts';
import { failedSinceLastLoad, getState, lastAppliedTables } from '../repo/ledger.ts';
import { loadModeOf, type LoadMode } from '../repo/tables.ts';
import type { CentralClient } from './client.ts';
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
