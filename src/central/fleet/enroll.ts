/**
 * Enrolment: devices created where asked, and a new secret for each, shown once and stored
 * hashed, all in one transaction: every line is right or nothing changes.
 */
import { randomUUID } from 'node:crypto';
import { withTransaction, type Pool, type PoolClient } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { storableText } from '../../contract/wire.ts';
import { requireMac } from '../model.ts';
import { existingLocations, insertAdminEvents, insertDevices, setCohort } from './repo/device-admin.ts';
import { devicesWithActiveCredential, findDevicesByMac, upsertSecretHashes } from '../sync/repo/devices.ts';
import { hashSecret, newSecret } from '../sync/credentials.ts';

/** One device to enrol; with a location it is created when no device has the MAC yet. */
export interface EnrolLine {
  mac: string;
  locationId?: string;
  name?: string;
  /** Its cohort (docs/releases.md): the canary cohort gets a rollout first. */
  cohort?: string;
  /** Where it came from, for error messages: "line 7". */
  origin?: string;
}

export interface EnrolOptions {
  actor: string;
  /** Re-key devices whose credential works today (otherwise they are left as they are). */
  rotate: boolean;
  /** When re-keying, the old credential keeps working this long (0: it stops at once). */
  overlapSeconds: number;
}

export interface EnrolResult {
  enrolled: { deviceId: string; mac: string; secret: string; created: boolean; rotated: boolean }[];
  /** Devices that already hold a working credential, left alone (without `rotate`). */
  kept: { deviceId: string; mac: string }[];
}

export const COHORT = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Checked {
  mac: string;
  line: EnrolLine;
}

/** Every problem of every line's own text; lines with a valid MAC are checked further. */
function checkLines(lines: readonly EnrolLine[]): { checked: Checked[]; problems: string[] } {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  const checked = lines.map((line, i) => {
    const where = line.origin ?? `entry ${i + 1}`;
    let mac = '';
    try {
      mac = requireMac(line.mac);
    } catch (err) {
      problems.push(`${where}: ${(err as Error).message}`);
    }
    if (mac && seen.has(mac)) problems.push(`${where}: MAC ${mac} again (first at ${seen.get(mac)})`);
    if (mac) seen.set(mac, where);
    if (line.locationId !== undefined && !UUID.test(line.locationId))
      problems.push(`${where}: location ${JSON.stringify(line.locationId)} is not a UUID`);
    if (line.name !== undefined && (line.name.length === 0 || line.name.length > 200))
      problems.push(`${where}: name must be 1 to 200 characters`);
    else if (line.name !== undefined && storableText(line.name) !== line.name)
      problems.push(`${where}: name holds a NUL or a broken UTF-16 character, which PostgreSQL cannot store`);
    if (line.cohort !== undefined && !COHORT.test(line.cohort))
      problems.push(
        `${where}: cohort ${JSON.stringify(line.cohort)} is not a name of a-z, 0-9, _ and - (at most 63)`,
      );
    return { mac, line };
  });
  return { checked: checked.filter((c) => c.mac !== ''), problems };
}

const problemsText = (problems: string[]) =>
  `nothing was enrolled; ${problems.length} problem(s):\n  ${problems.slice(0, 50).join('\n  ')}` +
  (problems.length > 50 ? `\n  … and ${problems.length - 50} more` : '');

export async function enrollDevices(
  pool: Pool,
  lines: readonly EnrolLine[],
  options: EnrolOptions,
): Promise<EnrolResult> {
  if (lines.length === 0) throw new AppError('INVALID_INPUT', 'no devices to enrol');
  const { checked, problems } = checkLines(lines);
  return withTransaction(pool, 'BEGIN', async (tx) => {
    const byMac = new Map(
      (
        await findDevicesByMac(
          tx,
          checked.map((c) => c.mac),
        )
      ).map((d) => [d.mac, d]),
    );
    const toCreate = checked.filter((c) => !byMac.has(c.mac));
    const absent = await missingLocations(tx, toCreate);
    // Every problem of every line together (its own mistakes, then what it names that is not
    // there), so an operator mends a file in one go, not one error at a time.
    if (problems.length + absent.length > 0)
      throw new AppError(
        problems.length > 0 ? 'INVALID_INPUT' : 'DEVICE_NOT_FOUND',
        problemsText([...problems, ...absent]),
      );
    const created = toCreate.map(({ mac, line }) => ({
      id: randomUUID(),
      mac,
      locationId: line.locationId!,
      name: line.name ?? `device ${mac}`,
    }));
    await insertDevices(tx, created);
    const ids = new Map([...byMac].map(([mac, d]) => [mac, d.id]));
    for (const d of created) ids.set(d.mac, d.id);
    const result = await issueCredentials(tx, checked, ids, new Set(byMac.keys()), options);
    for (const { mac, line } of checked)
      if (line.cohort !== undefined) await setCohort(tx, ids.get(mac)!, line.cohort, options.actor);
    await recordEnrolment(tx, created, result, options);
    return result;
  });
}

/** Lines of devices to create that give no location, or one that is not there. */
async function missingLocations(tx: PoolClient, toCreate: readonly Checked[]): Promise<string[]> {
  const locations = await existingLocations(
    tx,
    toCreate.flatMap((c) => (c.line.locationId && UUID.test(c.line.locationId) ? [c.line.locationId] : [])),
  );
  return toCreate.flatMap(({ mac, line }) => {
    const where = line.origin ?? mac;
    if (!line.locationId) return [`${where}: no device has MAC ${mac}; give its location to create it`];
    if (!UUID.test(line.locationId)) return []; // already said
    if (!locations.has(line.locationId.toLowerCase())) return [`${where}: no location ${line.locationId}`];
    return [];
  });
}

/** A new secret for each device, but one whose credential works today and is not to be rotated. */
async function issueCredentials(
  tx: PoolClient,
  checked: readonly Checked[],
  ids: ReadonlyMap<string, string>,
  existed: ReadonlySet<string>,
  options: EnrolOptions,
): Promise<EnrolResult> {
  const active = await devicesWithActiveCredential(tx, [...ids.values()]);
  const result: EnrolResult = { enrolled: [], kept: [] };
  for (const { mac } of checked) {
    const deviceId = ids.get(mac)!;
    if (active.has(deviceId) && !options.rotate) result.kept.push({ deviceId, mac });
    else
      result.enrolled.push({
        deviceId,
        mac,
        secret: newSecret(),
        created: !existed.has(mac),
        rotated: active.has(deviceId),
      });
  }
  const hashes = await Promise.all(
    result.enrolled.map(async (e) => ({ deviceId: e.deviceId, secretHash: await hashSecret(e.secret) })),
  );
  await upsertSecretHashes(tx, hashes, options.overlapSeconds);
  return result;
}

/** Who created and enrolled what, for the device's history. */
async function recordEnrolment(
  tx: PoolClient,
  created: readonly { id: string; mac: string; locationId: string; name: string }[],
  result: EnrolResult,
  options: EnrolOptions,
): Promise<void> {
  await insertAdminEvents(tx, [
    ...created.map((d) => ({
      actor: options.actor,
      action: 'create' as const,
      mac: d.mac,
      deviceId: d.id,
      details: { locationId: d.locationId, name: d.name },
    })),
    ...result.enrolled.map((e) => ({
      actor: options.actor,
      action: 'enroll' as const,
      mac: e.mac,
      deviceId: e.deviceId,
      details: e.rotated ? { rotated: true, overlapSeconds: options.overlapSeconds } : {},
    })),
  ]);
}

/** One device's new credential, re-keying it if it has one (`central enroll --mac M`). */
export async function enrollDevice(
  pool: Pool,
  mac: string,
  options: Partial<EnrolOptions> = {},
): Promise<EnrolResult['enrolled'][number]> {
  const { enrolled } = await enrollDevices(pool, [{ mac }], {
    actor: options.actor ?? 'internal',
    rotate: true,
    overlapSeconds: options.overlapSeconds ?? 0,
  });
  return enrolled[0]!;
}
