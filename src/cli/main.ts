/**
 * The `dbupdate` command line (CONTRACT §6). Each command validates its settings,
 * does its work and exits: 0 on success, 1 on failure, 2 on a usage error, always
 * with one line naming the error code on failure.
 */
import { AppError, isAppError } from '../platform/errors.ts';
import type { Command } from './util.ts';

const USAGE = `usage: dbupdate <command>

  central migrate                 apply central migrations
  central seed [options]          fill central with realistic fake data (--help for options)
  central serve                   run the central API
  central enroll --mac M          create or rotate a device credential (printed on the last line)
  central keygen                  a new manifest signing key pair (MANIFEST_SIGNING_KEY, MANIFEST_PUBLIC_KEYS)
  central prune-audit --days N    delete audit rows (requests, manifests, acks) older than N days
  edge migrate                    apply edge migrations
  edge serve                      run the edge service (schedule + local API)
  edge sync [--full]              one sync now, in the foreground (--full reloads every table)
  edge verify                     compare local tables with the last applied manifest
  demo                            the whole system on embedded PostgreSQL`;

async function loadGroup(group: string): Promise<Record<string, Command> | undefined> {
  if (group === 'central') return (await import('./central.ts')).centralCommands;
  if (group === 'edge') return (await import('./edge.ts')).edgeCommands;
  return undefined;
}

export async function main(argv: string[]): Promise<number> {
  const [group, name, ...rest] = argv;
  if (group === undefined || group === '--help' || group === '-h' || group === 'help') {
    console.log(USAGE);
    return group === undefined ? 2 : 0;
  }
  try {
    if (group === 'demo')
      return await (await import('./demo.ts')).demo([name, ...rest].filter((a) => a !== undefined));
    const commands = await loadGroup(group);
    const command = name === undefined ? undefined : commands?.[name];
    if (!command)
      throw new AppError('USAGE', `unknown command: ${[group, name].filter(Boolean).join(' ')}\n${USAGE}`);
    return await command(rest);
  } catch (err) {
    if (isAppError(err)) {
      console.error(`dbupdate: ${err.code}: ${err.message}`);
      return err.code === 'USAGE' ? 2 : 1;
    }
    console.error(`dbupdate: INTERNAL: ${(err as Error).stack ?? String(err)}`);
    return 1;
  }
}
