/** A device's scope version read on its own (the product reads it with the request's audit row). */
import type { Device } from '../../src/central/model.ts';
import { scopeVersionSql } from '../../src/central/sync/repo/scope.ts';
import type { Queryable } from '../../src/platform/db.ts';

export async function scopeVersion(db: Queryable, device: Device): Promise<string> {
  const { rows } = await db.query<{ version: string }>(
    `SELECT ${scopeVersionSql('$1::uuid', '$2::uuid')} AS version`,
    [device.locationId, device.id],
  );
  return rows[0]!.version;
}
