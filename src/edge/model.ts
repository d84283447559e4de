/**
 * The edge's domain types and wire shapes from one TypeBox source: the result of a sync
 * (POST /sync/now, the CLI), the sync state and GET /status. The one place where ledger
 * rows become domain and wire objects.
 */
import { Type, type Static } from 'typebox';
import { TableSummary } from '../contract/wire.ts';
import type { ErrorCode } from '../platform/errors.ts';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

export const SyncTrigger = Type.Union([
  Type.Literal('start'),
  Type.Literal('schedule'),
  Type.Literal('manual'),
  Type.Literal('verify'),
  Type.Literal('cli'),
  Type.Literal('lifetime'),
]);
export type SyncTrigger = Static<typeof SyncTrigger>;

export const SyncOutcome = Type.Union([
  Type.Literal('success'),
  Type.Literal('unchanged'),
  Type.Literal('failed'),
]);
export type SyncOutcome = Static<typeof SyncOutcome>;

/** A ledger row's status: a sync's outcome, or `running` while it runs. */
export const LedgerStatus = Type.Union([Type.Literal('running'), SyncOutcome]);
export type LedgerStatus = Static<typeof LedgerStatus>;

/** What became of a sync's acknowledgement; `none` when there was no manifest to acknowledge. */
export const AckOutcome = Type.Union([
  Type.Literal('sent'),
  Type.Literal('pending'),
  Type.Literal('failed'),
  Type.Literal('none'),
]);
export type AckOutcome = Static<typeof AckOutcome>;

export const ErrorDetail = Type.Object({ code: Type.String(), message: Type.String() });

export const SyncResultBody = Type.Object({
  syncId: Type.String(),
  status: SyncOutcome,
  manifestId: Nullable(Type.String()),
  durationMs: Type.Integer(),
  rowsLoaded: Type.Integer(),
  /** The tables whose rows were replaced (the others already matched). */
  tablesLoaded: Type.Optional(Type.Array(Type.String())),
  tables: Type.Array(TableSummary),
  ack: AckOutcome,
  error: Type.Optional(ErrorDetail),
  /** Central's release control held a change: nothing loaded, the data kept (docs/releases.md). */
  /** Every table was emptied: a signed wipe from Central (docs/releases.md). */
  wiped: Type.Optional(Type.Boolean()),
  held: Type.Optional(Type.Object({ reason: Type.String(), since: Type.String({ format: 'date-time' }) })),
  /** How the rows came: fetches of pieces, pieces fetched, found staged or kept in place, bytes. */
  transfer: Type.Optional(
    Type.Object({
      fetches: Type.Integer(),
      piecesFetched: Type.Integer(),
      piecesReused: Type.Integer(),
      piecesKept: Type.Integer(),
      piecesRefetched: Type.Integer(),
      rowsDeleted: Type.Integer(),
      bytesReceived: Type.Integer(),
    }),
  ),
});

export interface SyncResult extends Omit<Static<typeof SyncResultBody>, 'error'> {
  error?: { code: ErrorCode; message: string };
}

/** What the ledger's key/value state knows between syncs. */
export const SyncStateBody = Type.Object({
  lastManifestId: Type.Optional(Type.String()),
  lastGlobalSha256: Type.Optional(Type.String()),
  lastSuccessAt: Type.Optional(Type.String({ format: 'date-time' })),
  lastCheckAt: Type.Optional(Type.String({ format: 'date-time' })),
  /** `generatedAt` of the manifest of the data held: an older manifest is a replay. */
  lastGeneratedAt: Type.Optional(Type.String({ format: 'date-time' })),
  /** The device id this edge learned from its first applied snapshot. */
  deviceId: Type.Optional(Type.String()),
  /** The last scheduled verify: the drifted tables, comma separated (empty: none), and when. */
  driftTables: Type.Optional(Type.String()),
  driftCheckedAt: Type.Optional(Type.String({ format: 'date-time' })),
  /** SHA-256 of the last device report Central took (sync/device-report.ts). */
  reportedSha256: Type.Optional(Type.String()),
});
export type SyncState = Static<typeof SyncStateBody>;

/** The column `key` of edge_sync_state for each field. */
const STATE_KEYS: Record<keyof SyncState, string> = {
  lastManifestId: 'last_manifest_id',
  lastGlobalSha256: 'last_global_sha256',
  lastSuccessAt: 'last_success_at',
  lastCheckAt: 'last_check_at',
  lastGeneratedAt: 'last_generated_at',
  deviceId: 'device_id',
  driftTables: 'drift_tables',
  driftCheckedAt: 'drift_checked_at',
  reportedSha256: 'reported_sha256',
};
const FIELDS = Object.fromEntries(Object.entries(STATE_KEYS).map(([field, key]) => [key, field]));

export function stateFromRows(rows: readonly { key: string; value: string }[]): SyncState {
  const state: Record<string, string> = {};
  for (const { key, value } of rows) if (FIELDS[key]) state[FIELDS[key]] = value;
  return state;
}

export function stateToRows(state: SyncState): { keys: string[]; values: string[] } {
  const set = Object.entries(state).filter(([, v]) => v !== undefined) as [keyof SyncState, string][];
  return { keys: set.map(([field]) => STATE_KEYS[field]), values: set.map(([, v]) => v) };
}

export interface SyncLogRow {
  id: string;
  manifest_id: string | null;
  started_at: Date;
  completed_at: Date | null;
  status: LedgerStatus;
  trigger: SyncTrigger;
  duration_ms: number | null;
  error_code: string | null;
  error_text: string | null;
  held_reason: string | null;
  global_sha256: string | null;
  rows_loaded: string | null;
  ack_status: AckOutcome | null;
}

export const SyncLogEntry = Type.Object({
  syncId: Type.String(),
  manifestId: Nullable(Type.String()),
  trigger: SyncTrigger,
  status: LedgerStatus,
  startedAt: Type.String({ format: 'date-time' }),
  completedAt: Nullable(Type.String({ format: 'date-time' })),
  durationMs: Nullable(Type.Integer()),
  rowsLoaded: Nullable(Type.Integer()),
  errorCode: Nullable(Type.String()),
  errorText: Nullable(Type.String()),
  /** An unchanged sync whose change Central held: why (paused, guard). */
  heldReason: Nullable(Type.String()),
  globalSha256: Nullable(Type.String()),
  ack: Nullable(AckOutcome),
});
export type SyncLogEntry = Static<typeof SyncLogEntry>;

export function syncLogToWire(row: SyncLogRow): SyncLogEntry {
  return {
    syncId: row.id,
    manifestId: row.manifest_id,
    trigger: row.trigger,
    status: row.status,
    startedAt: row.started_at.toISOString(),
    completedAt: row.completed_at?.toISOString() ?? null,
    durationMs: row.duration_ms,
    rowsLoaded: row.rows_loaded === null ? null : Number(row.rows_loaded),
    errorCode: row.error_code,
    errorText: row.error_text,
    heldReason: row.held_reason,
    globalSha256: row.global_sha256,
    ack: row.ack_status,
  };
}

export const StatusBody = Type.Object({
  running: Type.Boolean(),
  loadMode: Type.Union([Type.Literal('replica'), Type.Literal('deferred'), Type.Literal('whole')], {
    description:
      "how the database user may load a table alone (repo/tables.ts); 'whole': no deltas, every change reloads every table",
  }),
  /** DOWNLOAD_RATE_KBPS (null: no cap) and DATA_LIFETIME_DAYS (null: kept however old): docs/releases.md. */
  downloadRateKbps: Nullable(Type.Integer()),
  dataLifetimeDays: Nullable(Type.Integer()),
  state: SyncStateBody,
  recent: Type.Array(SyncLogEntry),
});

/** How far one table's load has come: reported while a sync loads, for a terminal's progress line. */
export interface TableProgress {
  table: string;
  /** Rows and bytes loaded so far, and the rows the manifest announced. */
  rows: number;
  rowCount: number;
  bytes: number;
  done: boolean;
}
