/**
 * The `dbupdate` command line (docs/contract.md §6). Each command validates its settings,
 * does its work and exits: 0 on success, 1 on failure, 2 on a usage error, always
 * with one line naming the error code on failure.
 */
import type { TObject } from 'typebox';
import { describeSettings } from '../platform/config.ts';
import { AppError, normalizeError } from '../platform/errors.ts';
import { SOFTWARE_VERSION } from '../platform/version.ts';
import { closest, type Command } from './util.ts';

/** Which settings a command reads from the environment (its `--help` lists them). */
type Settings = 'central' | 'central database' | 'edge' | 'edge database';

/** Every command, as the usage text lists it; `--help` on any of them prints its entry and settings. */
export const COMMANDS: { command: string; args?: string; does: string; settings?: Settings }[] = [
  { command: 'central migrate', does: 'apply central migrations', settings: 'central database' },
  {
    command: 'central seed',
    args: '[options]',
    does: 'fill central with realistic fake data',
    settings: 'central database',
  },
  { command: 'central serve', does: 'run the central API', settings: 'central' },
  {
    command: 'central enroll',
    args: '--mac M [--location ID --name N] [--overlap-seconds S]',
    does: 'create the device if a location is given, and give it a new credential (printed on the last line)',
    settings: 'central database',
  },
  {
    command: 'central import',
    args: '--dir DIR',
    does: 'load your own data: <table>.csv files (header line first), upserted by key in one transaction',
    settings: 'central database',
  },
  {
    command: 'central enroll',
    args: '--csv FILE [--rotate] [--overlap-seconds S]',
    does: 'enrol many devices (mac[,location_id][,name][,cohort] per line); prints mac,device_id,credential lines',
    settings: 'central database',
  },
  {
    command: 'central devices list',
    args: '[--stale-hours N] [--limit N] [--after MAC] [--json]',
    does: 'the fleet: state, name, credential, last request and success, versions, last problem',
    settings: 'central database',
  },
  {
    command: 'central devices disable',
    args: '--mac M [--wipe] [--json]',
    does: 'refuse the device data (audited); --wipe: it empties its tables at its next request',
    settings: 'central database',
  },
  {
    command: 'central devices enable',
    args: '--mac M [--json]',
    does: 'serve the device again (audited)',
    settings: 'central database',
  },
  {
    command: 'central devices revoke',
    args: '--mac M [--wipe] [--json]',
    does: "the device's credential stops working at once (enroll gives it a new one); --wipe: it empties its tables",
    settings: 'central database',
  },
  {
    command: 'central release status',
    args: '[--json]',
    does: 'the freeze, the mass-change guard, devices held and the last decisions (docs/releases.md)',
    settings: 'central database',
  },
  {
    command: 'central release preview',
    args: '[--json]',
    does: 'what is pending now: devices it reaches; per table rows added, changed, removed and bytes (docs/releases.md)',
    settings: 'central database',
  },
  {
    command: 'central release pause',
    args: '[--reason TEXT] [--json]',
    does: 'freeze: devices that hold data keep it (audited); a device that holds nothing still gets data',
    settings: 'central database',
  },
  {
    command: 'central release resume',
    args: '[--json]',
    does: 'end the freeze (audited)',
    settings: 'central database',
  },
  {
    command: 'central release approve',
    args: '[--reason TEXT] [--json]',
    does: 'let the change the mass-change guard holds go to the fleet (audited)',
    settings: 'central database',
  },
  {
    command: 'central release reject',
    args: '[--reason TEXT] [--json]',
    does: 'keep the fleet on its data until Central’s data changes again (audited)',
    settings: 'central database',
  },
  {
    command: 'central devices cohort',
    args: '--mac M --cohort NAME | --clear [--json]',
    does: 'put the device in a cohort (audited): the canary cohort gets a rollout first; a cohort may have a sync window',
    settings: 'central database',
  },
  {
    command: 'central keygen',
    does: 'a new manifest signing key pair (MANIFEST_SIGNING_KEY, MANIFEST_PUBLIC_KEYS)',
  },
  {
    command: 'central prune-audit',
    args: '--days N [--batch N] [--every-hours H]',
    does: 'delete audit rows (requests, manifests, acks) older than N days; with --every-hours, again every H hours until stopped',
    settings: 'central database',
  },
  { command: 'edge migrate', does: 'apply edge migrations', settings: 'edge database' },
  { command: 'edge serve', does: 'run the edge service (schedule + local API)', settings: 'edge' },
  {
    command: 'edge sync',
    args: '[--full] [--json]',
    does: 'one sync now, in the foreground (--full reloads every table; --json prints JSON on a terminal too)',
    settings: 'edge',
  },
  {
    command: 'edge verify',
    args: '[--json]',
    does: 'compare local tables with the last applied manifest (Central hears of drift with the next sync)',
    settings: 'edge database',
  },
  {
    command: 'demo',
    args: '[--once] [--users N] [--interval S] [--log-level L]',
    does: 'the whole system on embedded PostgreSQL',
  },
];

const line = (c: (typeof COMMANDS)[number]) => `  ${`${c.command} ${c.args ?? ''}`.padEnd(56)} ${c.does}`;

const USAGE = `usage: dbupdate <command> [--help]    (dbupdate --version prints the version)

${COMMANDS.map(line).join('\n')}

Settings come from the environment (README, Configuration); errors print "dbupdate: CODE: message".`;

function version(): string {
  return `dbupdate ${SOFTWARE_VERSION} (node ${process.versions.node}, ${process.platform}/${process.arch})`;
}

/** The help of one command or of a group, or undefined when nothing matches. */
async function helpFor(words: string[]): Promise<string | undefined> {
  const prefix = words.join(' ');
  const matching = COMMANDS.filter((c) => c.command === prefix || c.command.startsWith(`${prefix} `));
  if (matching.length === 0) return undefined;
  const kinds = [...new Set(matching.flatMap((c) => (c.settings ? [c.settings] : [])))];
  const settings = await Promise.all(
    kinds.map(
      async (k) =>
        `settings of ${k} commands (environment):\n${describeSettings(await schemaOf(k)).join('\n')}`,
    ),
  );
  return [`usage: dbupdate\n${matching.map(line).join('\n')}`, ...settings].join('\n\n');
}

/** Loaded when asked, so that `dbupdate --version` reads no configuration module. */
async function schemaOf(settings: Settings): Promise<TObject> {
  if (settings === 'central') return (await import('../central/config.ts')).CentralConfigSchema;
  if (settings === 'edge') return (await import('../edge/config.ts')).EdgeConfigSchema;
  if (settings === 'central database') return (await import('./central.ts')).DbSettings;
  return (await import('./edge.ts')).DbSettings;
}

async function loadGroup(group: string): Promise<Record<string, Command> | undefined> {
  if (group === 'central') return (await import('./central.ts')).centralCommands;
  if (group === 'edge') return (await import('./edge.ts')).edgeCommands;
  if (group === 'demo') return { '': (await import('./demo.ts')).demo };
  return undefined;
}

const isHelp = (arg: string | undefined) => arg === '--help' || arg === '-h' || arg === 'help';

export async function main(argv: string[]): Promise<number> {
  const [group, ...afterGroup] = argv;
  if (group === undefined || isHelp(group)) {
    console.log(USAGE);
    return group === undefined ? 2 : 0;
  }
  if (group === '--version' || group === '-v' || group === 'version') {
    console.log(version());
    return 0;
  }
  const words = group === 'demo' ? [group] : [group, ...afterGroup.slice(0, 1)];
  const rest = argv.slice(words.length);
  try {
    // Help is answered before anything runs: `central migrate --help` must not migrate.
    if (rest.some(isHelp) || (words.length === 2 && isHelp(words[1]))) {
      const named = isHelp(words[1]) ? [group] : words;
      const text = await helpFor(named);
      if (!text) throw new AppError('USAGE', `unknown command: ${named.join(' ')}\n${USAGE}`);
      // seed's flags are too many for one line: it prints its own, fuller help.
      if (named.join(' ') !== 'central seed') {
        console.log(text);
        return 0;
      }
    }
    const commands = await loadGroup(group);
    const command = commands?.[words[1] ?? ''];
    if (!command) {
      const guess = closest(words[1] ?? '', Object.keys(commands ?? {}));
      throw new AppError(
        'USAGE',
        `unknown command: ${words.join(' ')}${guess ? `; did you mean \`${group} ${guess}\`?` : ''}\n${USAGE}`,
      );
    }
    return await command(rest);
  } catch (err) {
    const appErr = normalizeError(err);
    if (appErr.code === 'INTERNAL') {
      console.error(`dbupdate: INTERNAL: ${(err as Error).stack ?? String(err)}`);
      return 1;
    }
    console.error(`dbupdate: ${appErr.code}: ${appErr.message}`);
    return appErr.code === 'USAGE' ? 2 : 1;
  }
}
