/**
 * How an attempt ends: its ledger row, its ack to Central and its SyncResult, the one place
 * each is made. A failure is a result, not a throw: the transaction rolled back, so the
 * local data is exactly as it was, and the ledger and the Failed ack say why.
 */
import type { TableDigest } from '../../contract/canonical.ts';
import { SnapshotFormatError } from '../../contract/snapshot-reader.ts';
import { storableText, type AckBody, type Manifest } from '../../contract/wire.ts';
import { AppError, normalizeError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import type { AckOutcome, SyncResult } from '../model.ts';
import { finishSync, lastAppliedTables, setState, type SyncFinish } from '../repo/ledger.ts';
import { acknowledge } from './acks.ts';
import { elapsed, type Attempt } from './attempt.ts';
import { heldFacts } from './checks.ts';
import { reasonOf } from './errors.ts';

type ResultFields = Pick<SyncResult, 'rowsLoaded' | 'tables' | 'ack'> &
  Partial<Pick<SyncResult, 'tablesLoaded' | 'error'>>;

/** A malformed stream is Central's fault; anything else unnamed failed in the local load. */
export function asAppError(err: unknown): AppError {
  if (err instanceof SnapshotFormatError)
    return new AppError('SNAPSHOT_INVALID', err.message, { cause: err });
  return normalizeError(err, 'LOAD_FAILED');
}

/** The scope is as the edge holds it: nothing loaded, the check recorded and acknowledged. */
export async function recordUnchanged(a: Attempt, m: Manifest, log: Logger): Promise<SyncResult> {
  const held = a.held ?? (await lastAppliedTables(a.client));
  await finishSync(a.client, a.syncId, ledgerRow(a, 'unchanged', 0));
  await setState(a.client, { lastCheckAt: new Date().toISOString(), ...heldFacts(m) });
  log.info({ event: 'sync.unchanged', globalSha256: m.globalSha256 }, 'scope unchanged, nothing loaded');
  const tables = held?.tables ?? [];
  const ack = await acknowledgeAttempt(a, 'Success', tables, null, log);
  return resultOf(a, 'unchanged', { rowsLoaded: 0, tables, ack });
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
