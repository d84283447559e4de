/**
 * A Central database ready for a demonstration or a measurement: migrated, seeded with
 * fake data of `usersPerCompany`, and its first device enrolled (the demo, the arm64
 * check and the fuzz bench all start this way).
 */
import type { Pool } from '../../platform/db.ts';
import { migrate } from '../../platform/migrate.ts';
import { centralMigrations } from '../migrations.ts';
import { enrollDevice } from './enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from './seed.ts';

export async function prepareDemoCentral(pool: Pool, usersPerCompany: number) {
  await migrate(pool, await centralMigrations());
  const seeded = await seedCentral(pool, { ...DEFAULT_SHAPE, usersPerCompany }, { reset: false });
  const { mac, secret } = await enrollDevice(pool, seeded.devices[0]!.mac);
  return { seeded, mac, secret };
}
