/** The release as the admin API and the CLI show it: rows to wire, in one place. */
import { Type, type Static } from 'typebox';
import { Nullable } from '../fleet/admin-wire.ts';
import type { ReleaseStatus } from './control.ts';
import { rolloutOf } from './rollout.ts';
import { running, waveCount, wavesOpen, type Staging } from './waves.ts';

const When = Nullable(Type.String({ format: 'date-time' }));

export const ReleaseState = Type.Object({
  paused: Type.Boolean(),
  pausedAt: When,
  pausedBy: Nullable(Type.String()),
  pauseReason: Nullable(Type.String()),
  guard: Type.Union([
    Type.Literal('clear'),
    Type.Literal('tripped'),
    Type.Literal('approved'),
    Type.Literal('rejected'),
  ]),
  guardAt: When,
  guardBy: Nullable(Type.String()),
  /** What tripped the guard: table, device, rows held, rows it would hold, rows removed, limit. */
  guardDetail: Nullable(Type.Record(Type.String(), Type.Unknown())),
  /** Devices answered "held" in the last 15 minutes, in all and by reason (paused, guard, wave, window). */
  heldDevices: Type.Integer(),
  heldByReason: Type.Record(Type.String(), Type.Integer()),
  rollout: Type.Object({
    startedAt: When,
    canariesOkAt: When,
    endedAt: When,
    /** Waves opened so far and in all (null: staging off, RELEASE_WAVE_PERCENT=0, or the CLI, which reads no settings). */
    wavesOpen: Nullable(Type.Integer()),
    waves: Nullable(Type.Integer()),
    /** Devices that took a change since the rollout began. */
    updatedDevices: Type.Integer(),
  }),
  events: Type.Array(
    Type.Object({
      at: Type.String({ format: 'date-time' }),
      actor: Type.String(),
      action: Type.String(),
      details: Type.Record(Type.String(), Type.Unknown()),
    }),
  ),
});
export type ReleaseState = Static<typeof ReleaseState>;

export const ReleaseChangeBody = Type.Object({
  action: Type.String(),
  changed: Type.Boolean({ description: 'false when the release already was in that state' }),
});

export function releaseToWire(s: ReleaseStatus, staging?: Staging): ReleaseState {
  const r = s.state;
  const rollout = rolloutOf(r);
  const staged = staging && staging.wavePercent > 0 && running(rollout);
  return {
    paused: r.paused_at !== null,
    pausedAt: r.paused_at?.toISOString() ?? null,
    pausedBy: r.paused_by,
    pauseReason: r.pause_reason,
    guard: r.guard,
    guardAt: r.guard_at?.toISOString() ?? null,
    guardBy: r.guard_by,
    guardDetail: r.guard_detail,
    heldDevices: s.heldDevices,
    heldByReason: s.heldByReason,
    rollout: {
      startedAt: r.rollout_started_at?.toISOString() ?? null,
      canariesOkAt: r.rollout_canaries_ok_at?.toISOString() ?? null,
      endedAt: r.rollout_ended_at?.toISOString() ?? null,
      wavesOpen: staged ? wavesOpen(rollout, staging, Date.now()) : null,
      waves: staged ? waveCount(staging) : null,
      updatedDevices: s.updatedSinceRollout,
    },
    events: s.events.map((e) => ({
      at: e.at.toISOString(),
      actor: e.actor,
      action: e.action,
      details: e.details,
    })),
  };
}

export const PreviewBody = Type.Object({
  devices: Type.Integer({ description: 'enabled devices' }),
  reached: Type.Integer({ description: 'devices that hold data and would take a change' }),
  firstSyncs: Type.Integer({
    description: 'devices that hold nothing Central knows of: they load everything',
  }),
  tables: Type.Array(
    Type.Object({
      table: Type.String(),
      devices: Type.Integer(),
      rowsAdded: Type.Integer(),
      rowsRemoved: Type.Integer(),
      rowsChanged: Nullable(
        Type.Integer({ description: 'null: the pieces the devices hold are no longer known' }),
      ),
      bytes: Type.Integer({
        description: 'bytes of rows (COPY text, before compression) the devices would fetch',
      }),
    }),
  ),
  tookMs: Type.Integer(),
});
