/** `dbupdate central devices …` and `central enroll`: the device lifecycle from a shell. */
import { readFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { parse } from 'csv-parse/sync';
import { listDevices } from '../central/fleet/repo/device-admin.ts';
import { requireMac } from '../central/model.ts';
import { deviceToWire } from '../central/fleet/admin-wire.ts';
import { changeDevice, setDeviceCohort, type DeviceAction } from '../central/fleet/devices.ts';
import { enrollDevices, type EnrolLine } from '../central/fleet/enroll.ts';
import { AppError } from '../platform/errors.ts';
import type { Pool } from '../platform/db.ts';
import { aligned, ago, parseFlags, type Command } from './util.ts';

/** Who is at the shell, for the audit of what they changed. */
export function cliActor(): string {
  let user = process.env.USER ?? 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // A container's user may have no passwd entry; $USER or "unknown" says as much.
  }
  return `cli:${user}@${hostname()}`;
}

const wholeNumber = (flag: string, raw: unknown, min: number, max: number): number | undefined => {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new AppError('USAGE', `--${flag} must be a whole number from ${min} to ${max}, got ${String(raw)}`);
  return n;
};

/** Lines of an enrolment CSV: a header naming `mac` and optionally `location_id` and `name`. */
export function parseEnrolCsv(text: string): EnrolLine[] {
  let records: Record<string, string>[];
  try {
    records = parse(text, {
      columns: (header: string[]) => header.map((h) => h.trim().toLowerCase()),
      skip_empty_lines: true,
      trim: true,
      comment: '#',
    });
  } catch (err) {
    throw new AppError('INVALID_INPUT', `the CSV cannot be read: ${(err as Error).message}`);
  }
  if (records.length > 0 && !('mac' in records[0]!))
    throw new AppError(
      'INVALID_INPUT',
      'the CSV needs a header line naming its columns: mac[,location_id][,name]',
    );
  // csv-parse counts lines from 1 with the header; its info would need the raw option.
  return records.map((r, i) => ({
    mac: r.mac ?? '',
    ...(r.location_id ? { locationId: r.location_id } : {}),
    ...(r.name ? { name: r.name } : {}),
    ...(r.cohort ? { cohort: r.cohort } : {}),
    origin: `line ${i + 2}`,
  }));
}

async function enroll(pool: Pool, argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    mac: { type: 'string' },
    csv: { type: 'string' },
    location: { type: 'string' },
    name: { type: 'string' },
    rotate: { type: 'boolean' },
    'overlap-seconds': { type: 'string' },
  });
  if ((values.mac === undefined) === (values.csv === undefined))
    throw new AppError('USAGE', 'enroll needs --mac M or --csv FILE (one of them)');
  const overlapSeconds = wholeNumber('overlap-seconds', values['overlap-seconds'], 0, 30 * 86_400) ?? 0;
  const single = values.mac !== undefined;
  const lines = single
    ? [
        {
          mac: values.mac as string,
          ...(values.location ? { locationId: values.location as string } : {}),
          ...(values.name ? { name: values.name as string } : {}),
        },
      ]
    : parseEnrolCsv(await readFile(values.csv as string, 'utf8'));
  // One MAC is re-keyed as it always was; a file is idempotent unless --rotate.
  const rotate = single || values.rotate === true;
  const result = await enrollDevices(pool, lines, { actor: cliActor(), rotate, overlapSeconds });
  for (const e of result.enrolled.filter((x) => x.rotated)) {
    console.error(
      overlapSeconds > 0
        ? `warning: ${e.mac} had a working credential; it keeps working for ${overlapSeconds} s beside the new one`
        : `warning: ${e.mac} had a working credential; it stopped working now (--overlap-seconds N keeps it valid)`,
    );
  }
  if (single) {
    const e = result.enrolled[0]!;
    console.error(
      `${e.created ? 'created and ' : ''}enrolled device ${e.deviceId} (${e.mac}); the credential below is shown only once`,
    );
    console.log(e.secret);
    return 0;
  }
  console.error(
    `${result.enrolled.length} enrolled (${result.enrolled.filter((e) => e.created).length} created), ` +
      `${result.kept.length} already enrolled and kept (--rotate re-keys them); credentials are shown only once`,
  );
  console.log('mac,device_id,credential');
  for (const e of result.enrolled) console.log(`${e.mac},${e.deviceId},${e.secret}`);
  return 0;
}

async function list(pool: Pool, argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    'stale-hours': { type: 'string' },
    limit: { type: 'string' },
    after: { type: 'string' },
    json: { type: 'boolean' },
  });
  const staleHours = wholeNumber('stale-hours', values['stale-hours'], 1, 24 * 90);
  const max = wholeNumber('limit', values.limit, 1, 10_000_000) ?? Number.POSITIVE_INFINITY;
  // A terminal gets aligned columns and ages; a pipe gets tab-separated values and times.
  const table = !values.json && process.stdout.isTTY === true;
  let afterMac = values.after === undefined ? undefined : requireMac(values.after as string);
  let shown = 0;
  let total: number;
  const rows: string[][] = [COLUMNS];
  if (!values.json && !table) console.log(COLUMNS.join('\t'));
  // Page by page, so a fleet of 100,000 is listed in bounded memory (a terminal's table is one page).
  for (;;) {
    const page = await listDevices(pool, { staleHours, afterMac, limit: Math.min(500, max - shown) });
    total = page.total;
    for (const row of page.rows) {
      const d = deviceToWire(row);
      if (values.json) console.log(JSON.stringify(d));
      else if (table) rows.push(cells(d, ago));
      else console.log(cells(d, (t) => t ?? 'never').join('\t'));
    }
    shown += page.rows.length;
    if (page.rows.length < 500 || shown >= max || table) break;
    afterMac = page.rows.at(-1)!.mac;
  }
  if (table) console.log(aligned(rows));
  const more = shown < total && table ? `; the next page: --after ${rows.at(-1)![0]}` : '';
  console.error(
    `${shown} of ${total} device(s)${staleHours ? ` without a successful ack in ${staleHours} h` : ''}${more}`,
  );
  return 0;
}

const COLUMNS = [
  'MAC',
  'STATE',
  'NAME',
  'CREDENTIAL',
  'LAST REQUEST',
  'LAST SUCCESS',
  'SCHEMA',
  'SOFTWARE',
  'LOCATION',
  'COHORT',
  'RELEASE',
  'LAST PROBLEM',
];

function cells(d: ReturnType<typeof deviceToWire>, time: (iso: string | null) => string): string[] {
  return [
    d.mac,
    d.state,
    d.name,
    d.credential,
    time(d.lastRequestAt),
    time(d.lastSuccessAt),
    String(d.schemaVersion ?? '-'),
    d.softwareVersion ?? '-',
    d.location,
    d.cohort ?? '-',
    d.release,
    lastProblem(d),
  ];
}

async function change(pool: Pool, action: DeviceAction, argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    mac: { type: 'string' },
    json: { type: 'boolean' },
    ...(action === 'enable' ? {} : { wipe: { type: 'boolean' as const } }),
  });
  if (!values.mac) throw new AppError('USAGE', `devices ${action} needs --mac M`);
  const result = await changeDevice(pool, values.mac as string, action, cliActor(), values.wipe === true);
  const what = { disable: 'disabled', enable: 'enabled', revoke: 'credential revoked' }[action];
  const wiped = result.wipe ? '; it empties its tables at its next request (signed wipe)' : '';
  if (values.json) console.log(JSON.stringify(result));
  else console.log(`${result.mac}: ${result.changed ? what : `already ${what}`}${wiped}`);
  return 0;
}

async function cohort(pool: Pool, argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    mac: { type: 'string' },
    cohort: { type: 'string' },
    clear: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (!values.mac || (values.cohort === undefined) === (values.clear !== true))
    throw new AppError('USAGE', 'devices cohort needs --mac M and one of --cohort NAME or --clear');
  const name = (values.cohort as string | undefined) ?? null;
  const result = await setDeviceCohort(pool, values.mac as string, name, cliActor());
  if (values.json) console.log(JSON.stringify(result));
  else
    console.log(
      `${result.mac}: ${name === null ? 'in no cohort' : `in cohort ${name}`}${result.changed ? '' : ' (already)'}`,
    );
  return 0;
}

export function deviceCommands(withCentralPool: <T>(work: (pool: Pool) => Promise<T>) => Promise<T>): {
  enroll: Command;
  devices: Command;
} {
  return {
    enroll: (argv) => withCentralPool((pool) => enroll(pool, argv)),
    devices: ([sub, ...argv]) => {
      if (sub === 'list') return withCentralPool((pool) => list(pool, argv));
      if (sub === 'disable' || sub === 'enable' || sub === 'revoke')
        return withCentralPool((pool) => change(pool, sub, argv));
      if (sub === 'cohort') return withCentralPool((pool) => cohort(pool, argv));
      throw new AppError(
        'USAGE',
        `unknown command: central devices ${sub ?? ''} (list, disable, enable, revoke, cohort)`,
      );
    },
  };
}

/** Drift first; then the newer of the last error Central saw and the last failure the device reported. */
function lastProblem(d: ReturnType<typeof deviceToWire>): string {
  if (d.driftTables && d.driftTables.length > 0)
    return `DRIFT: ${d.driftTables.join(', ')} (${d.driftCheckedAt})`;
  const own = d.reportedFailure ? `${d.reportedFailure} (reported by the device)` : undefined;
  if (own && (d.lastErrorAt === null || (d.reportedFailureAt ?? '') > d.lastErrorAt)) return own;
  return d.lastError ?? '';
}
