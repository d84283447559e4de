import { Type } from 'typebox';
import { loadCentralConfig } from '../central/config.ts';
import { generateSigningKeys } from '../contract/signing.ts';
import { centralMigrations } from '../central/migrations.ts';
import { runCentral } from '../central/server.ts';
import { importDirectory } from '../central/fleet/import.ts';
import { pruneAudit } from '../central/fleet/retention.ts';
import { DEFAULT_SHAPE, seedCentral } from '../central/fleet/seed.ts';
import { dataTablesEmpty, type SeedShape } from '../central/fleet/repo/seed.ts';
import { loadConfig, LogFormatSetting, LogLevelSetting, secret } from '../platform/config.ts';
import type { Pool } from '../platform/db.ts';
import { AppError } from '../platform/errors.ts';
import { createLogger } from '../platform/logger.ts';
import { migrate } from '../platform/migrate.ts';
import { stopOnSignal } from '../platform/lifecycle.ts';
import { repeatEvery } from '../platform/schedule.ts';
import { deviceCommands } from './devices.ts';
import { releaseCommand } from './release.ts';
import { parseFlags, withPool, type Command } from './util.ts';

/** What the commands that only need the database read. */
export const DbSettings = Type.Object({
  CENTRAL_DATABASE_URL: secret(Type.String({ pattern: '^postgres(ql)?://' })),
  LOG_LEVEL: LogLevelSetting,
  LOG_FORMAT: LogFormatSetting,
});

async function withCentralPool<T>(work: (pool: Pool, logLevel: string) => Promise<T>): Promise<T> {
  const settings = loadConfig(DbSettings);
  return withPool(settings.CENTRAL_DATABASE_URL, (pool) => work(pool, settings.LOG_LEVEL));
}

const SEED_FLAGS = {
  seed: 'seed',
  companies: 'companies',
  'locations-per-company': 'locationsPerCompany',
  'groups-per-company': 'groupsPerCompany',
  'groups-per-location': 'groupsPerLocation',
  'users-per-company': 'usersPerCompany',
  'groups-per-user': 'groupsPerUser',
  'areas-per-location': 'areasPerLocation',
  'devices-per-location': 'devicesPerLocation',
} as const satisfies Record<string, keyof SeedShape>;

export function parseSeedShape(values: Record<string, unknown>): SeedShape {
  const shape: SeedShape = { ...DEFAULT_SHAPE };
  for (const [flag, key] of Object.entries(SEED_FLAGS)) {
    const raw = values[flag];
    if (raw === undefined) continue;
    const n = Number(raw);
    const min = key === 'seed' || key === 'groupsPerLocation' || key === 'groupsPerUser' ? 0 : 1;
    if (!Number.isSafeInteger(n) || n < min || n > 100_000_000) {
      throw new AppError('USAGE', `--${flag} must be a whole number from ${min}, got ${String(raw)}`);
    }
    shape[key] = n;
  }
  return shape;
}

export const centralCommands: Record<string, Command> = {
  async migrate() {
    return withCentralPool(async (pool, level) => {
      const result = await migrate(pool, await centralMigrations(), createLogger('dbupdate-cli', level));
      console.log(`central migrations: ${result.applied.length} applied, now at ${result.current}`);
      return 0;
    });
  },

  async seed(argv) {
    const options = Object.fromEntries(Object.keys(SEED_FLAGS).map((f) => [f, { type: 'string' as const }]));
    const values = parseFlags(argv, {
      ...options,
      reset: { type: 'boolean' },
      'if-empty': { type: 'boolean' },
      help: { type: 'boolean' },
    });
    if (values.help) {
      console.log(
        `usage: dbupdate central seed [--reset | --if-empty] ${Object.keys(SEED_FLAGS)
          .map((f) => `[--${f} N]`)
          .join(' ')}\ndefaults: ${JSON.stringify(DEFAULT_SHAPE)}`,
      );
      return 0;
    }
    const shape = parseSeedShape(values);
    if (values.reset && values['if-empty'])
      throw new AppError('USAGE', '--reset and --if-empty exclude each other');
    return withCentralPool(async (pool) => {
      await migrate(pool, await centralMigrations());
      // --if-empty makes seeding safe to repeat, e.g. as a one-shot container at every start.
      if (values['if-empty'] && !(await dataTablesEmpty(pool))) {
        console.log('central already holds data; not seeding (--if-empty)');
        return 0;
      }
      if (values.reset)
        console.error(
          'warning: --reset wipes every company, location, device and device credential: ' +
            'every enrolled edge stops syncing until it is enrolled again',
        );
      const result = await seedCentral(pool, shape, { reset: values.reset === true });
      console.log(JSON.stringify({ shape, ...result }, null, 2));
      return 0;
    });
  },

  async 'prune-audit'(argv) {
    const values = parseFlags(argv, {
      days: { type: 'string' },
      batch: { type: 'string' },
      'every-hours': { type: 'string' },
    });
    const days = Number(values.days);
    const batch = Number(values.batch ?? 10_000);
    const everyHours = values['every-hours'] === undefined ? undefined : Number(values['every-hours']);
    if (!Number.isSafeInteger(days) || days < 1)
      throw new AppError('USAGE', 'prune-audit needs --days N (N ≥ 1): keep this many days of audit rows');
    if (!Number.isSafeInteger(batch) || batch < 1 || batch > 1_000_000)
      throw new AppError('USAGE', '--batch must be between 1 and 1000000');
    if (everyHours !== undefined && !(everyHours >= 0.01 && everyHours <= 24 * 7))
      throw new AppError('USAGE', '--every-hours must be a number of hours from 0.01 to 168');
    return withCentralPool(async (pool, level) => {
      // Logs on stderr: stdout carries the result alone, for scripts.
      const log = createLogger('dbupdate-cli', level, {}, 2);
      const once = async () =>
        console.log(
          JSON.stringify(await pruneAudit(pool, { olderThanDays: days, batch }, log).catch(asOwnerOnly)),
        );
      if (everyHours === undefined) {
        await once();
        return 0;
      }
      // The stack's housekeeping service: prune now, then every N hours until stopped (the
      // stop waits for a running prune; the process then ends).
      const running: { first?: Promise<void>; schedule?: { stop(): Promise<void> } } = {};
      const stopping = new Promise((resolve) =>
        stopOnSignal(log, async () => {
          await running.first;
          await running.schedule?.stop();
          resolve(undefined);
        }),
      );
      running.first = once().catch((err: unknown) =>
        log.error({ err, event: 'audit.prune' }, 'prune failed'),
      );
      await running.first;
      running.schedule = repeatEvery(everyHours * 3_600_000, 60_000, once);
      await stopping;
      return 0;
    });
  },

  async import(argv) {
    const values = parseFlags(argv, { dir: { type: 'string' } });
    const dir = values.dir;
    if (typeof dir !== 'string')
      throw new AppError('USAGE', 'import needs --dir DIR: a folder of CSV files named after the tables');
    return withCentralPool(async (pool) => {
      await migrate(pool, await centralMigrations());
      const result = await importDirectory(pool, dir);
      for (const [table, n] of Object.entries(result))
        console.error(`${table}: ${n.inserted} inserted, ${n.updated} updated`);
      console.log(JSON.stringify(result));
      return 0;
    });
  },

  async serve(argv) {
    parseFlags(argv, {});
    await runCentral(loadCentralConfig());
    return -1;
  },

  async keygen(argv) {
    parseFlags(argv, {});
    const keys = generateSigningKeys();
    console.error(
      `new Ed25519 manifest key ${keys.keyId}: the first line goes to Central only (keep it secret), ` +
        'the second to every edge (append it to the list during a rotation)',
    );
    console.log(`MANIFEST_SIGNING_KEY=${keys.privateKey}`);
    console.log(`MANIFEST_PUBLIC_KEYS=${keys.publicKey}`);
    return 0;
  },

  ...deviceCommands((work) => withCentralPool((pool) => work(pool))),
  release: releaseCommand((work) => withCentralPool((pool) => work(pool))),
};

/** The API role may add audit rows but not delete them: pruning is the owner's job. */
function asOwnerOnly(err: unknown): never {
  if ((err as { code?: unknown }).code === '42501')
    throw new AppError(
      'DATABASE_ACCESS_DENIED',
      `${(err as Error).message}: prune-audit deletes audit rows, which the least-privilege API role may not; ` +
        'run it with CENTRAL_DATABASE_URL of the role that owns the tables (the one that runs central migrate)',
      { cause: err },
    );
  throw err;
}
