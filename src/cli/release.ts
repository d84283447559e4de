/** `dbupdate central release …`: the freeze and the mass-change guard from a shell (docs/releases.md). */
import { changeRelease, releaseStatus, type ReleaseAction } from '../central/release/control.ts';
import { releaseToWire, type ReleaseState } from '../central/release/wire.ts';
import type { Pool } from '../platform/db.ts';
import { AppError } from '../platform/errors.ts';
import { cliActor } from './devices.ts';
import { ago, aligned, parseFlags, type Command } from './util.ts';
import { previewRelease } from '../central/release/preview.ts';
import { DATA_MODEL } from '../contract/data-model.ts';

const ACTIONS: readonly string[] = ['pause', 'resume', 'approve', 'reject'];

const DONE: Record<ReleaseAction, [string, string]> = {
  pause: ['paused: devices that hold data keep it until `dbupdate central release resume`', 'already paused'],
  resume: ['resumed: devices take what changed at their next sync', 'was not paused'],
  approve: ['approved: the held change goes to the fleet at its next syncs', ''],
  reject: ['rejected: devices keep their data until Central’s data changes again', ''],
};

async function change(pool: Pool, action: ReleaseAction, argv: string[]): Promise<number> {
  const values = parseFlags(argv, { reason: { type: 'string' }, json: { type: 'boolean' } });
  const result = await changeRelease(pool, action, cliActor(), (values.reason as string | undefined) ?? null);
  if (values.json) console.log(JSON.stringify(result));
  else console.log(DONE[action][result.changed ? 0 : 1]);
  return 0;
}

async function preview(pool: Pool, argv: string[]): Promise<number> {
  const values = parseFlags(argv, { json: { type: 'boolean' } });
  const p = await previewRelease(pool, DATA_MODEL);
  if (values.json) {
    console.log(JSON.stringify(p));
    return 0;
  }
  console.log(
    `${p.reached} of ${p.devices} devices would take a change; ${p.firstSyncs} hold nothing yet (read in ${p.tookMs} ms)`,
  );
  const rows = p.tables
    .filter((t) => t.devices > 0)
    .map((t) => [
      t.table,
      String(t.devices),
      `+${t.rowsAdded}`,
      `-${t.rowsRemoved}`,
      String(t.rowsChanged ?? '?'),
      String(t.bytes),
    ]);
  if (rows.length > 0)
    console.log(aligned([['TABLE', 'DEVICES', 'ADDED', 'REMOVED', 'CHANGED', 'BYTES'], ...rows]));
  console.error(
    'CHANGED ? and BYTES of whole tables: the CLI does not know the pieces devices hold; GET /api/admin/release/preview does',
  );
  return 0;
}

async function status(pool: Pool, argv: string[]): Promise<number> {
  const values = parseFlags(argv, { json: { type: 'boolean' } });
  const state = releaseToWire(await releaseStatus(pool));
  console.log(values.json ? JSON.stringify(state) : describe(state));
  return 0;
}

function describe(s: ReleaseState): string {
  const lines = [
    s.paused
      ? `freeze: PAUSED ${ago(s.pausedAt)} by ${s.pausedBy}${s.pauseReason ? ` (${s.pauseReason})` : ''}`
      : 'freeze: off',
    `guard: ${s.guard}${s.guardAt ? ` ${ago(s.guardAt)}${s.guardBy ? ` by ${s.guardBy}` : ''}` : ''}`,
  ];
  const d = s.guardDetail;
  if (d && s.guard === 'tripped')
    lines.push(
      `  ${String(d.device)} would lose ${String(d.removed)} of its ${String(d.held)} ${String(d.table)} rows: ` +
        '`dbupdate central release approve` lets it go, `reject` keeps the fleet on its data',
    );
  const ro = s.rollout;
  if (ro.startedAt)
    lines.push(
      ro.endedAt
        ? `rollout: the last one began ${ago(ro.startedAt)} and reached every device ${ago(ro.endedAt)}`
        : `rollout: began ${ago(ro.startedAt)}; ${ro.canariesOkAt ? `canaries acked ${ago(ro.canariesOkAt)}, waves opening` : 'waiting for the canaries'}; ${ro.updatedDevices} devices took it`,
    );
  const reasons = Object.entries(s.heldByReason).map(([r, n]) => `${r} ${n}`);
  lines.push(
    `devices held in the last 15 minutes: ${s.heldDevices}${reasons.length ? ` (${reasons.join(', ')})` : ''}`,
  );
  for (const e of s.events.slice(0, 5)) lines.push(`  ${e.at}  ${e.action.padEnd(7)} ${e.actor}`);
  return lines.join('\n');
}

export function releaseCommand(
  withCentralPool: <T>(work: (pool: Pool) => Promise<T>) => Promise<T>,
): Command {
  return ([sub, ...argv]) => {
    if (sub === 'status') return withCentralPool((pool) => status(pool, argv));
    if (sub === 'preview') return withCentralPool((pool) => preview(pool, argv));
    if (sub !== undefined && ACTIONS.includes(sub))
      return withCentralPool((pool) => change(pool, sub as ReleaseAction, argv));
    throw new AppError(
      'USAGE',
      `unknown command: central release ${sub ?? ''} (status, preview, pause, resume, approve, reject)`,
    );
  };
}
