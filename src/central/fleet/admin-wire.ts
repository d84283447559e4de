/** Wire shapes of the admin API, and the one place audit rows become them. */
import type { ReleaseGate } from '../release/gate.ts';
import type { KnownPieces } from '../release/preview.ts';
import type { DataModel } from '../../contract/data-model.ts';
import type { Pool } from '../../platform/db.ts';
import { Type, type Static } from 'typebox';
import type { DeviceActivity, HourlyCountRow, RowDeltaRow } from './repo/admin.ts';
import type { AdminEventRow, DeviceListRow, VersionCountRow } from './repo/device-admin.ts';

export const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) =>
  Type.Union([t, Type.Null()]);
/** Query strings arrive as text and types are not coerced (request bodies stay strict). */
export const Hours = Type.String({ pattern: '^[1-9][0-9]{0,3}$', description: 'hours, 1–2160' });
export const Limit = Type.String({ pattern: '^[1-9][0-9]{0,2}$', description: 'rows, 1–500' });

const MAX_HOURS = 24 * 90;
export const hoursOf = (text: string | undefined, fallback: number) =>
  Math.min(Number(text ?? fallback), MAX_HOURS);
export const limitOf = (text: string | undefined, fallback: number) =>
  Math.min(Number(text ?? fallback), 500);
/** Every admin route's OpenAPI tag and security scheme. */
export const common = { tags: ['admin'], security: [{ admin: [] }] };
export const MacParams = Type.Object({ mac: Type.String({ maxLength: 64 }) });

export const Summary = Type.Object({
  hours: Type.Integer(),
  byStatus: Type.Record(Type.String(), Type.Integer()),
});

export const Hourly = Type.Object({
  hours: Type.Integer(),
  buckets: Type.Array(
    Type.Object({
      hour: Type.String({ format: 'date-time' }),
      requests: Type.Record(Type.String(), Type.Integer(), { description: 'requests by audit status' }),
      acks: Type.Record(Type.String(), Type.Integer(), { description: 'acknowledgements by result' }),
    }),
  ),
});

export const Mac = Type.String({ minLength: 1, maxLength: 64, description: 'MAC in a common spelling' });

export const DeviceSummary = Type.Object({
  mac: Type.String(),
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  locationId: Type.String({ format: 'uuid' }),
  location: Type.String(),
  company: Type.String(),
  enabled: Type.Boolean(),
  credential: Type.Union(
    [Type.Literal('none'), Type.Literal('active'), Type.Literal('rotating'), Type.Literal('revoked')],
    { description: 'rotating: a re-key is in its overlap window, the old credential still works' },
  ),
  lastRequestAt: Nullable(Type.String()),
  lastRequestStatus: Nullable(Type.String()),
  lastSuccessAt: Nullable(Type.String({ description: 'last acknowledgement with result Success' })),
  schemaVersion: Nullable(Type.Integer({ description: 'as the edge reported it with its last request' })),
  softwareVersion: Nullable(Type.String()),
  lastErrorAt: Nullable(Type.String()),
  lastError: Nullable(Type.String()),
  state: Type.Union(
    [Type.Literal('never synced'), Type.Literal('synced'), Type.Literal('drifted'), Type.Literal('disabled')],
    {
      description:
        'never synced: no successful acknowledgement yet; drifted: its last verify found tables that differ',
    },
  ),
  reportedFailureAt: Nullable(
    Type.String({ description: "the device's own report of its last failed sync" }),
  ),
  reportedFailure: Nullable(Type.String({ description: 'code: message, as the edge recorded it' })),
  driftTables: Nullable(
    Type.Array(Type.String(), { description: 'tables its last verify found drifted (empty: none)' }),
  ),
  cohort: Nullable(
    Type.String({ description: 'its cohort: the canary cohort gets a rollout first (docs/releases.md)' }),
  ),
  release: Type.String({
    description:
      "where release control has it: 'current', 'held: paused|guard|wave|window' (its last answer), 'wipe pending' or 'wiped' (acked)",
  }),
  driftCheckedAt: Nullable(Type.String()),
});

export const DevicePage = Type.Object({
  total: Type.Integer({ description: 'devices matching, on every page' }),
  next: Nullable(Type.String({ description: 'pass as `after` for the next page; null on the last' })),
  devices: Type.Array(DeviceSummary),
});

export const StaleDevices = Type.Object({ hours: Type.Integer(), ...DevicePage.properties });

export const DeviceVersions = Type.Object({
  served: Type.Array(Type.Integer(), { description: 'the schema versions this Central serves' }),
  versions: Type.Array(
    Type.Object({
      schemaVersion: Nullable(
        Type.Integer({ description: 'null: not reported (an edge before 0.1, or no request yet)' }),
      ),
      softwareVersion: Nullable(Type.String()),
      devices: Type.Integer(),
      refused: Type.Integer({
        description: 'of them, refused for their schema version at their last request',
      }),
    }),
  ),
});

export const DeviceEvents = Type.Object({
  mac: Type.String(),
  events: Type.Array(
    Type.Object({
      at: Type.String(),
      actor: Type.String(),
      action: Type.String(),
      details: Type.Record(Type.String(), Type.Unknown()),
    }),
  ),
});

export const Failures = Type.Object({
  hours: Type.Integer(),
  failures: Type.Array(
    Type.Object({
      code: Type.String({ description: 'the error code (docs/errors.md)' }),
      source: Type.Union([Type.Literal('request'), Type.Literal('device')], {
        description: "request: Central's answer; device: the device's own report of a failed sync",
      }),
      failures: Type.Integer(),
      devices: Type.Integer(),
    }),
  ),
});

export const RowDeltas = Type.Object({
  mac: Type.String(),
  manifests: Type.Array(
    Type.Object({
      manifestId: Type.String(),
      generatedAt: Type.String(),
      tables: Type.Array(
        Type.Object({
          name: Type.String(),
          rowCount: Type.Integer(),
          delta: Nullable(
            Type.Integer({ description: 'change from the previous manifest; null for the first' }),
          ),
          changed: Nullable(
            Type.Boolean({
              description:
                "the table's content differs from the previous manifest's (an edit may keep the count); null for the first",
            }),
          ),
        }),
      ),
    }),
  ),
});

export const Activity = Type.Object({
  mac: Type.String(),
  requests: Type.Array(
    Type.Object({
      requestedAt: Type.String(),
      status: Type.String(),
      manifestId: Nullable(Type.String()),
      errorCode: Nullable(Type.String()),
      durationMs: Nullable(Type.Integer()),
      bytesSent: Nullable(Type.Integer()),
    }),
  ),
  acks: Type.Array(
    Type.Object({
      manifestId: Type.String(),
      completedAt: Type.String(),
      result: Type.String(),
      durationMs: Type.Integer(),
      error: Nullable(Type.String()),
    }),
  ),
  manifests: Type.Array(
    Type.Object({
      manifestId: Type.String(),
      generatedAt: Type.String(),
      globalSha256: Type.String(),
      rows: Type.Integer(),
    }),
  ),
  errors: Type.Array(
    Type.Object({
      at: Type.String(),
      source: Type.Union([Type.Literal('request'), Type.Literal('ack')]),
      code: Type.String(),
      message: Nullable(Type.String()),
    }),
  ),
});

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

export function hourlyToWire(hours: number, rows: HourlyCountRow[]): Static<typeof Hourly> {
  const buckets = new Map<string, Static<typeof Hourly>['buckets'][number]>();
  const now = new Date();
  now.setUTCMinutes(0, 0, 0);
  // Every hour appears, empty ones too, so charts keep a true time axis.
  for (let i = hours - 1; i >= 0; i--) {
    const hour = new Date(now.getTime() - i * 3_600_000).toISOString();
    buckets.set(hour, { hour, requests: {}, acks: {} });
  }
  for (const row of rows) {
    const bucket = buckets.get(row.hour.toISOString());
    if (bucket) (row.kind === 'request' ? bucket.requests : bucket.acks)[row.outcome] = row.n;
  }
  return { hours, buckets: [...buckets.values()] };
}

export function deviceToWire(r: DeviceListRow): Static<typeof DeviceSummary> {
  return {
    mac: r.mac,
    id: r.id,
    name: r.name,
    locationId: r.location_id,
    location: r.location,
    company: r.company,
    enabled: r.is_enabled,
    credential: r.credential_state,
    lastRequestAt: iso(r.last_request_at),
    lastRequestStatus: r.last_request_status,
    lastSuccessAt: iso(r.last_success_at),
    schemaVersion: r.schema_version,
    softwareVersion: r.software_version,
    lastErrorAt: iso(r.last_error_at),
    lastError: r.last_error,
    state: deviceState(r),
    reportedFailureAt: iso(r.reported_failure_at),
    reportedFailure: r.reported_failure,
    driftTables: r.drift_tables,
    driftCheckedAt: iso(r.drift_checked_at),
    cohort: r.cohort,
    release: r.wipe_state
      ? r.wipe_state
      : r.last_request_status === 'held'
        ? `held: ${r.last_request_reason ?? '?'}`
        : 'current',
  };
}

/** One word for where a device stands, first match wins: disabled, never synced, drifted, synced. */
export function deviceState(r: DeviceListRow): Static<typeof DeviceSummary>['state'] {
  if (!r.is_enabled) return 'disabled';
  if (r.last_success_at === null) return 'never synced';
  return (r.drift_tables?.length ?? 0) > 0 ? 'drifted' : 'synced';
}

export function devicePageToWire(
  page: { rows: DeviceListRow[]; total: number },
  limit: number,
): Static<typeof DevicePage> {
  return {
    total: page.total,
    next: page.rows.length === limit ? page.rows.at(-1)!.mac : null,
    devices: page.rows.map(deviceToWire),
  };
}

export function eventsToWire(mac: string, rows: AdminEventRow[]): Static<typeof DeviceEvents> {
  return {
    mac,
    events: rows.map((e) => ({
      at: e.at.toISOString(),
      actor: e.actor,
      action: e.action,
      details: e.details,
    })),
  };
}

export function deltasToWire(mac: string, rows: RowDeltaRow[]): Static<typeof RowDeltas> {
  const manifests = new Map<string, Static<typeof RowDeltas>['manifests'][number]>();
  for (const r of rows) {
    let m = manifests.get(r.manifest_id);
    if (!m) {
      m = { manifestId: r.manifest_id, generatedAt: r.generated_at.toISOString(), tables: [] };
      manifests.set(r.manifest_id, m);
    }
    m.tables.push({
      name: r.table_name,
      rowCount: Number(r.row_count),
      delta: r.delta === null ? null : Number(r.delta),
      changed: r.delta === null ? null : r.changed === true,
    });
  }
  return { mac, manifests: [...manifests.values()] };
}

export function activityToWire(mac: string, a: DeviceActivity): Static<typeof Activity> {
  const errors: Static<typeof Activity>['errors'] = [
    ...a.errors.map((e) => ({
      at: e.requested_at.toISOString(),
      source: 'request' as const,
      code: e.error_code ?? e.status,
      message: e.reason,
    })),
    ...a.acks
      .filter((k) => k.result === 'Failed')
      .map((k) => ({
        at: k.completed_at.toISOString(),
        source: 'ack' as const,
        code: 'ACK_FAILED',
        message: k.error_text,
      })),
  ].sort((x, y) => y.at.localeCompare(x.at));
  return {
    mac,
    requests: a.requests.map((r) => ({
      requestedAt: r.requested_at.toISOString(),
      status: r.status,
      manifestId: r.manifest_id,
      errorCode: r.error_code,
      durationMs: r.duration_ms,
      bytesSent: r.bytes_sent === null ? null : Number(r.bytes_sent),
    })),
    acks: a.acks.map((k) => ({
      manifestId: k.manifest_id,
      completedAt: k.completed_at.toISOString(),
      result: k.result,
      durationMs: k.duration_ms,
      error: k.error_text,
    })),
    manifests: a.manifests.map((m) => ({
      manifestId: m.manifest_id,
      generatedAt: m.generated_at.toISOString(),
      globalSha256: m.global_sha256,
      rows: Number(m.rows ?? 0),
    })),
    errors,
  };
}

export function versionsToWire(
  served: readonly number[],
  rows: VersionCountRow[],
): Static<typeof DeviceVersions> {
  return {
    served: [...served],
    versions: rows.map((r) => ({
      schemaVersion: r.schema_version,
      softwareVersion: r.software_version,
      devices: r.devices,
      refused: r.refused,
    })),
  };
}

/** What the admin routes are given. */
export interface AdminOptions {
  pool: Pool;
  adminToken: string | undefined;
  /** The data-model versions this Central serves, for the fleet's version view. */
  servedVersions: readonly number[];
  /** Release control: the freeze and the mass-change guard (release/). */
  release: ReleaseGate;
  /** The release preview's data model and Central's piece index (release/preview.ts). */
  preview?: { model: DataModel; known: KnownPieces };
}
