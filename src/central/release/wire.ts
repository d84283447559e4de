/** The release as the admin API and the CLI show it: rows to wire, in one place. */
import { Type, type Static } from 'typebox';
import { Nullable } from '../fleet/admin-wire.ts';
import type { ReleaseStatus } from './control.ts';

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
  /** Devices answered "held" in the last 15 minutes. */
  heldDevices: Type.Integer(),
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

export function releaseToWire(s: ReleaseStatus): ReleaseState {
  const r = s.state;
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
    events: s.events.map((e) => ({
      at: e.at.toISOString(),
      actor: e.actor,
      action: e.action,
      details: e.details,
    })),
  };
}
