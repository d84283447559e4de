/**
 * One sync, the only code path for the CLI, the schedule and POST /sync/now:
 * pull → validate → (unchanged? record and stop) → one transaction that empties the
 * eight tables, COPYs the stream in, recomputes counts and hashes and compares them
 * with the manifest, writes the ledger and state, commits → acknowledge.
 * Any failure rolls the transaction back: the local data stays exactly as it was.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { verifyManifest } from '../../contract/signing.ts';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { globalSha256, sameDigest, type TableDigest } from '../../contract/canonical.ts';
import { digestTables } from '../../contract/digest-pg.ts';
import { readSnapshot, SnapshotFormatError, type SnapshotItem } from '../../contract/snapshot-reader.ts';
import { COPY_SESSION_SETTINGS_SQL, TABLES } from '../../contract/tables.ts';
import { SCHEMA_VERSION, storableText, type AckBody, type Manifest } from '../../contract/wire.ts';
import type { Pool, PoolClient } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
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
  lastFinishedStatus,
  manifestApplied,
  setState,
  tryAdvisoryLock,
  type SyncFinish,
} from '../repo/ledger.ts';
import {
  canLoadWithoutTriggers,
  checkForeignKeys,
  copyIntoTable,
  emptyDataTables,
  emptyTable,
  findLocalDevice,
  localSelectSql,
  setTriggers,
} from '../repo/tables.ts';
import { acknowledge, flushPendingAcks, type AckOutcome } from './acks.ts';
import type { CentralClient } from './central-client.ts';
import type { EdgeMetrics } from '../metrics.ts';

/** One sync at a time per edge database, across processes. */
export const SYNC_LOCK_KEY = 0x64627379; // "dbsy"

export type SyncTrigger = 'start' | 'schedule' | 'manual' | 'cli';

export interface SyncResult {
  syncId: string;
  status: 'success' | 'unchanged' | 'failed';
  manifestId: string | null;
  durationMs: number;
  rowsLoaded: number;
  /** The tables whose rows were replaced (the others already matched). */
  tablesLoaded?: string[];
  tables: TableDigest[];
  ack: AckOutcome;
  error?: { code: string; message: string };
}

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
}

interface Transfer {
  bytes: number;
  hash: ReturnType<typeof createHash>;
}

async function* counted(source: AsyncIterable<Uint8Array>, transfer: Transfer): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    transfer.bytes += chunk.byteLength;
    transfer.hash.update(chunk);
    yield chunk;
  }
}

function validateManifest(manifest: Manifest, now: number): void {
  if (manifest.schemaVersion !== SCHEMA_VERSION) {
    throw new AppError(
      'SCHEMA_VERSION_MISMATCH',
      `manifest has schema version ${manifest.schemaVersion}, this edge has ${SCHEMA_VERSION}`,
    );
  }
  if (Date.parse(manifest.expiresAt) <= now) {
    throw new AppError(
      'MANIFEST_EXPIRED',
      `manifest ${manifest.manifestId} expired at ${manifest.expiresAt}`,
    );
  }
  const names = manifest.tables.map((t) => t.name).join(',');
  if (names !== TABLES.map((t) => t.name).join(',')) {
    throw new AppError('SNAPSHOT_INVALID', `manifest lists tables ${names}`);
  }
  if (globalSha256(manifest.tables) !== manifest.globalSha256) {
    throw new AppError('SNAPSHOT_INVALID', 'manifest globalSha256 does not match its tables');
  }
}

/**
 * A manifest older than what this edge already holds is a replay or a rollback (a response
 * recorded on the path, or a stale Central): refused, whatever its signature says. The
 * comparison is on `generatedAt`, signed inside the manifest. A manifest for another
 * device is refused by the device id this edge learned from its first applied snapshot.
 */
function refuseStaleOrForeign(manifest: Manifest, state: Record<string, string>): void {
  const held = state.last_generated_at;
  if (held && Date.parse(manifest.generatedAt) < Date.parse(held)) {
    throw new AppError(
      'MANIFEST_STALE',
      `manifest ${manifest.manifestId} was generated at ${manifest.generatedAt}, before the ${held} of the data this edge holds`,
    );
  }
  const device = state.device_id;
  if (device && manifest.filters.deviceId !== device) {
    throw new AppError(
      'MANIFEST_NOT_FOR_DEVICE',
      `manifest ${manifest.manifestId} is for device ${manifest.filters.deviceId}, this edge is ${device}`,
    );
  }
}

/** What an applied or confirmed manifest tells about the data held, for the next refusals. */
function heldFacts(manifest: Manifest): Record<string, string> {
  return { last_generated_at: manifest.generatedAt, device_id: manifest.filters.deviceId };
}

/** The tables whose local digest differs from the manifest's, each with both row counts. */
function compareDigests(expected: readonly TableDigest[], actual: readonly TableDigest[]): string[] {
  return expected.flatMap((e, i) =>
    sameDigest(e, actual[i])
      ? []
      : [`${e.name} (expected ${e.rowCount} rows, got ${actual[i]?.rowCount ?? '?'})`],
  );
}

/**
 * COPYs every table frame into its table. With `partial`, a table is emptied just before
 * its rows load and a frame without rows keeps the local table as it is; otherwise all
 * tables were emptied first (children before parents, as the foreign keys require).
 */
async function loadTables(
  client: PoolClient,
  items: AsyncGenerator<SnapshotItem>,
  log: Logger,
  partial: boolean,
  metrics: EdgeMetrics,
): Promise<{ rows: number; tables: string[] }> {
  let rows = 0;
  const tables: string[] = [];
  for (const def of TABLES) {
    const next = await items.next();
    if (next.done || next.value.type !== 'table')
      throw new AppError('SNAPSHOT_INVALID', `expected table ${def.name}`);
    const { frame, rows: data } = next.value;
    if (frame.table !== def.name || frame.columns.join(',') !== def.columns.map((c) => c.name).join(',')) {
      throw new AppError(
        'SNAPSHOT_INVALID',
        `table frame ${frame.table} does not match local table ${def.name}`,
      );
    }
    if (frame.rowsIncluded === false) {
      if (!partial) throw new AppError('SNAPSHOT_INVALID', `table ${def.name} came without rows`);
      continue;
    }
    if (partial) await emptyTable(client, def);
    const started = performance.now();
    await step(log, 'sync.load.table', { table: def.name, rows: frame.rowCount }, () =>
      pipeline(Readable.from(data), copyIntoTable(client, def)),
    );
    metrics.recordTableLoad(def.name, frame.rowCount, (performance.now() - started) / 1000);
    rows += frame.rowCount;
    tables.push(def.name);
  }
  const end = await items.next();
  if (end.done || end.value.type !== 'end')
    throw new AppError('SNAPSHOT_INVALID', 'stream did not end after the last table');
  return { rows, tables };
}

function asAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof SnapshotFormatError)
    return new AppError('SNAPSHOT_INVALID', err.message, { cause: err });
  return new AppError('LOAD_FAILED', (err as Error).message, { cause: err });
}

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

  /** `full`: offer Central nothing the edge holds, so every table is sent and reloaded. */
  async run(trigger: SyncTrigger, options: { full?: boolean } = {}): Promise<SyncResult> {
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
        const result = await step(log, 'sync', {}, () =>
          this.#attempt(client!, syncId, log, options.full === true),
        );
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

  async #attempt(client: PoolClient, syncId: string, log: Logger, full: boolean): Promise<SyncResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const transfer: Transfer = { bytes: 0, hash: createHash('sha256') };
    const state = await getState(client);
    let manifest: Manifest | undefined;
    let inTransaction = false;
    let body: AsyncGenerator<Uint8Array> | undefined;
    // What this edge holds is offered to Central only while its last sync ended well:
    // after a failure (drift found, load cut short) the next sync reloads everything.
    const trusted = !full && (await lastFinishedStatus(client, syncId)) !== 'failed';
    // Without trigger bypass, parents cannot be reloaded under kept children: reload all.
    const fast = await canLoadWithoutTriggers(client);
    const applied = trusted && fast ? await lastAppliedTables(client) : undefined;
    try {
      body = await step(log, 'sync.pull', {}, () =>
        this.#deps.central.requestSnapshot(
          {
            mac: this.#deps.mac,
            knownGlobalSha256: trusted ? (state.last_global_sha256 ?? null) : null,
            ...(applied
              ? { knownTables: Object.fromEntries(applied.tables.map((t) => [t.name, t.sha256])) }
              : {}),
          },
          {},
          Date.now() + this.#deps.deadlineMs,
        ),
      );
      const items = readSnapshot(counted(body, transfer));
      const first = await items.next();
      if (first.done || first.value.type !== 'manifest')
        throw new AppError('SNAPSHOT_INVALID', 'no manifest');
      const signed = verifyManifest(first.value.manifest, first.value.signature, this.#deps.publicKeys);
      if (signed !== 'ok') {
        throw new AppError('MANIFEST_SIGNATURE_INVALID', `manifest signature check failed: ${signed}`);
      }
      manifest = first.value.manifest;
      const m = manifest;
      const mlog = log.child({ manifestId: m.manifestId });
      await step(mlog, 'sync.validate', {}, async () => {
        validateManifest(m, Date.now());
        refuseStaleOrForeign(m, state);
        if (await manifestApplied(client, m.manifestId)) {
          throw new AppError('MANIFEST_ALREADY_APPLIED', `manifest ${m.manifestId} was applied before`);
        }
      });

      if (!m.rowsIncluded || (trusted && m.globalSha256 === state.last_global_sha256)) {
        for await (const _ of items) {
          /* drain to the end frame, which the reader checks */
        }
        const held = applied ?? (await lastAppliedTables(client));
        await finishSync(client, syncId, this.#finish('unchanged', m, elapsed(), transfer, 0));
        await setState(client, { last_check_at: new Date().toISOString(), ...heldFacts(m) });
        mlog.info(
          { event: 'sync.unchanged', globalSha256: m.globalSha256 },
          'scope unchanged, nothing loaded',
        );
        const tables = held?.tables ?? [];
        const ack = await acknowledge(
          client,
          this.#deps.central,
          this.#ack(m, 'Success', tables, elapsed(), null, transfer),
          mlog,
        );
        return {
          syncId,
          status: 'unchanged',
          manifestId: m.manifestId,
          durationMs: elapsed(),
          rowsLoaded: 0,
          tables,
          ack,
        };
      }

      await client.query('BEGIN');
      inTransaction = true;
      await client.query(COPY_SESSION_SETTINGS_SQL);
      const loaded = await step(mlog, 'sync.load', {}, async () => {
        if (fast) await setTriggers(client, false);
        else await emptyDataTables(client);
        const result = await loadTables(client, items, mlog, fast, this.#deps.metrics);
        if (fast) {
          await setTriggers(client, true);
          const violated = await checkForeignKeys(client);
          if (violated.length > 0) {
            throw new AppError('SNAPSHOT_INVALID', `snapshot breaks foreign keys: ${violated.join(', ')}`);
          }
        }
        return result;
      });
      const rowsLoaded = loaded.rows;
      const local = await step(mlog, 'sync.verify', {}, async () => {
        const digests = await digestTables(client, localSelectSql);
        const drift = compareDigests(m.tables, digests);
        if (drift.length > 0)
          throw new AppError('HASH_MISMATCH', `loaded tables differ from the manifest: ${drift.join(', ')}`);
        const own = await findLocalDevice(client, this.#deps.mac);
        if (!own)
          throw new AppError('SNAPSHOT_INVALID', `snapshot does not hold this device (${this.#deps.mac})`);
        if (own.id !== m.filters.deviceId || own.locationId !== m.filters.locationId) {
          throw new AppError(
            'MANIFEST_NOT_FOR_DEVICE',
            `manifest ${m.manifestId} names device ${m.filters.deviceId}, this edge (${this.#deps.mac}) is ${own.id}`,
          );
        }
        return digests;
      });
      await step(mlog, 'sync.commit', {}, async () => {
        // Checked again at the end: a slow link must not stretch a manifest's lifetime.
        if (Date.parse(m.expiresAt) <= Date.now())
          throw new AppError(
            'MANIFEST_EXPIRED',
            `manifest ${m.manifestId} expired at ${m.expiresAt}, before commit`,
          );
        await insertSyncTables(client, syncId, local);
        await finishSync(client, syncId, this.#finish('success', m, elapsed(), transfer, rowsLoaded));
        const now = new Date().toISOString();
        await setState(client, {
          last_manifest_id: m.manifestId,
          last_global_sha256: m.globalSha256,
          last_success_at: now,
          last_check_at: now,
          ...heldFacts(m),
        });
        await client.query('COMMIT');
        inTransaction = false;
      });
      const ack = await acknowledge(
        client,
        this.#deps.central,
        this.#ack(m, 'Success', local, elapsed(), null, transfer),
        mlog,
      );
      return {
        syncId,
        status: 'success',
        manifestId: m.manifestId,
        durationMs: elapsed(),
        rowsLoaded,
        tablesLoaded: loaded.tables,
        tables: local,
        ack,
      };
    } catch (err) {
      const appErr = asAppError(err);
      if (inTransaction) await client.query('ROLLBACK');
      if (appErr.code === 'SCHEMA_VERSION_MISMATCH') {
        log.error({ event: 'sync.alert', alert: true, code: appErr.code }, appErr.message);
      }
      await finishSync(client, syncId, {
        ...this.#finish('failed', manifest, elapsed(), transfer, 0),
        errorCode: appErr.code,
        errorText: appErr.message.slice(0, 4000),
      });
      let ack: AckOutcome = 'none';
      if (manifest) {
        // The rollback left the ledger as it was when this sync began.
        const held = applied ?? (await lastAppliedTables(client));
        ack = await acknowledge(
          client,
          this.#deps.central,
          this.#ack(
            manifest,
            'Failed',
            held?.tables ?? [],
            elapsed(),
            `${appErr.code}: ${appErr.message}`,
            transfer,
          ),
          log,
        );
      }
      return {
        syncId,
        status: 'failed',
        manifestId: manifest?.manifestId ?? null,
        durationMs: elapsed(),
        rowsLoaded: 0,
        tables: [],
        ack,
        error: { code: appErr.code, message: appErr.message },
      };
    } finally {
      // A sync that stopped reading must close the response, or Central keeps streaming into it.
      await body?.return(undefined).catch(() => undefined);
    }
  }

  #finish(
    status: SyncFinish['status'],
    m: Manifest | undefined,
    durationMs: number,
    t: Transfer,
    rows: number,
  ): SyncFinish {
    return {
      status,
      manifestId: m?.manifestId ?? null,
      durationMs,
      globalSha256: m?.globalSha256 ?? null,
      rowsLoaded: rows,
      bytesReceived: t.bytes,
      payloadSha256: status === 'failed' ? null : t.hash.copy().digest('hex'),
    };
  }

  #ack(
    m: Manifest,
    status: 'Success' | 'Failed',
    tables: readonly TableDigest[],
    durationMs: number,
    error: string | null,
    t: Transfer,
  ): AckBody {
    return {
      manifestId: m.manifestId,
      mac: this.#deps.mac,
      status,
      localCounts: Object.fromEntries(tables.map((x) => [x.name, x.rowCount])),
      localChecksums: Object.fromEntries(tables.map((x) => [x.name, x.sha256])),
      durationMs,
      error: error === null ? null : storableText(error.slice(0, 4000)),
      payloadSha256: status === 'Success' ? t.hash.copy().digest('hex') : null,
    };
  }
}
