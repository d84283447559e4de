/**
 * `dbupdate central seed`: faker supplies realistic name pools (deterministic for a
 * seed), PostgreSQL multiplies them out set-based in one transaction.
 */
import { withTransaction, type Pool } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import {
  dataTablesEmpty,
  sampleDevices,
  seedAreasAndDevices,
  seedCompanies,
  seedGroups,
  seedLocations,
  seedUsers,
  tableCounts,
  truncateDataTables,
  withForeignKeysRebuilt,
  type NamePools,
  type SeedShape,
} from './repo/seed.ts';

export const DEFAULT_SHAPE: SeedShape = {
  seed: 1,
  companies: 2,
  locationsPerCompany: 3,
  groupsPerCompany: 6,
  groupsPerLocation: 3,
  usersPerCompany: 200,
  groupsPerUser: 2,
  areasPerLocation: 4,
  devicesPerLocation: 2,
};

/** faker is loaded only here: it weighs ~40 MB, which the services must not carry. */
async function namePools(seed: number): Promise<NamePools> {
  const { Faker, en } = await import('@faker-js/faker');
  const faker = new Faker({ locale: [en] });
  faker.seed(seed);
  const many = <T>(n: number, make: () => T): T[] => Array.from({ length: n }, make);
  return {
    companies: many(200, () => faker.company.name()),
    locations: many(
      200,
      () => `${faker.location.city()} ${faker.helpers.arrayElement(['Plant', 'Depot', 'Store', 'Hub'])}`,
    ),
    addresses: many(
      500,
      () => `${faker.location.streetAddress()}\n${faker.location.zipCode()} ${faker.location.city()}`,
    ),
    timezones: [
      'UTC',
      'Europe/Berlin',
      'America/New_York',
      'Asia/Tokyo',
      'Asia/Kolkata',
      'America/Sao_Paulo',
    ],
    groups: many(100, () => `${faker.commerce.department()} ${faker.word.noun()}`),
    firstNames: many(1000, () => faker.person.firstName()),
    lastNames: many(1000, () => faker.person.lastName()),
    areas: many(50, () =>
      faker.helpers.arrayElement(['Dock', 'Floor', 'Yard', 'Lab', 'Office', 'Storage', 'Line']),
    ),
  };
}

export interface SeedResult {
  counts: Record<string, number>;
  devices: { mac: string; name: string }[];
  durationMs: number;
}

export async function seedCentral(
  pool: Pool,
  shape: SeedShape,
  options: { reset: boolean },
): Promise<SeedResult> {
  const started = performance.now();
  const pools = await namePools(shape.seed);
  await withTransaction(pool, 'BEGIN', async (tx) => {
    if (!(await dataTablesEmpty(tx))) {
      if (!options.reset)
        throw new AppError('SEED_NOT_EMPTY', 'central already holds data; pass --reset to replace it');
      await truncateDataTables(tx);
    }
    await seedCompanies(tx, shape, pools);
    await seedLocations(tx, shape, pools);
    await seedGroups(tx, shape, pools);
    await withForeignKeysRebuilt(tx, 'users', () =>
      withForeignKeysRebuilt(tx, 'group_users', () => seedUsers(tx, shape, pools)),
    );
    await seedAreasAndDevices(tx, shape, pools);
  });
  // As autovacuum would leave a database of this size: statistics, hint bits and the
  // visibility map set, so the first snapshot does not pay for writing them.
  await pool.query('VACUUM (ANALYZE)');
  return {
    counts: await tableCounts(pool),
    devices: await sampleDevices(pool, 5),
    durationMs: Math.round(performance.now() - started),
  };
}
