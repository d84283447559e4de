/**
 * The checks a sync makes of a manifest before it loads anything, and of the loaded
 * tables before it commits. Each throws an AppError with the code the ledger records.
 */
import { globalSha256, sameDigest, type TableDigest } from '../../contract/canonical.ts';
import { digestTables } from '../../contract/digest-pg.ts';
import type { PoolClient } from '../../platform/db.ts';
import { findLocalDevice, localSelectSql } from '../repo/tables.ts';
import type { DataModel } from '../../contract/data-model.ts';
import type { Manifest } from '../../contract/wire.ts';
import { AppError } from '../../platform/errors.ts';
import type { SyncState } from '../model.ts';

/** Its shape against this edge's model (its lifetime is the ManifestClock's to judge). */
export function validateManifest(manifest: Manifest, model: DataModel): void {
  if (manifest.schemaVersion !== model.version) {
    throw new AppError(
      'SCHEMA_VERSION_MISMATCH',
      `manifest has schema version ${manifest.schemaVersion}, this edge has ${model.version}`,
    );
  }
  const names = manifest.tables.map((t) => t.name).join(',');
  if (names !== model.tables.map((t) => t.name).join(',')) {
    throw new AppError('SNAPSHOT_INVALID', `manifest lists tables ${names}`);
  }
  if (globalSha256(manifest.tables) !== manifest.globalSha256) {
    throw new AppError('SNAPSHOT_INVALID', 'manifest globalSha256 does not match its tables');
  }
}

/**
 * A manifest older than what this edge already holds is a replay or a rollback (a response
 * recorded on the path, or a stale Central): refused, whatever its signature says. The
 * comparison is on `generatedAt`, signed inside the manifest. A manifest for another
 * device is refused by the device id this edge learned from its first applied snapshot.
 */
export function refuseStaleOrForeign(manifest: Manifest, state: SyncState): void {
  const held = state.lastGeneratedAt;
  if (held && Date.parse(manifest.generatedAt) < Date.parse(held)) {
    throw new AppError(
      'MANIFEST_STALE',
      `manifest ${manifest.manifestId} was generated at ${manifest.generatedAt}, before the ${held} of the data this edge holds`,
    );
  }
  const device = state.deviceId;
  if (device && manifest.filters.deviceId !== device) {
    throw new AppError(
      'MANIFEST_NOT_FOR_DEVICE',
      `manifest ${manifest.manifestId} is for device ${manifest.filters.deviceId}, this edge is ${device}`,
    );
  }
}

/** What an applied or confirmed manifest tells about the data held, for the next refusals. */
export function heldFacts(manifest: Manifest): SyncState {
  return { lastGeneratedAt: manifest.generatedAt, deviceId: manifest.filters.deviceId };
}

export interface TableComparison {
  name: string;
  expected: TableDigest;
  actual: TableDigest;
  ok: boolean;
}

/** The one comparison of local tables with a manifest's, for the sync and for `edge verify`. */
export function compareTables(
  expected: readonly TableDigest[],
  actual: readonly TableDigest[],
): TableComparison[] {
  return expected.map((e, i) => ({
    name: e.name,
    expected: e,
    actual: actual[i]!,
    ok: sameDigest(e, actual[i]),
  }));
}

/** The tables whose local digest differs from the manifest's, each with both row counts. */
export function compareDigests(expected: readonly TableDigest[], actual: readonly TableDigest[]): string[] {
  return compareTables(expected, actual)
    .filter((t) => !t.ok)
    .map((t) => `${t.name} (expected ${t.expected.rowCount} rows, got ${t.actual?.rowCount ?? '?'})`);
}

/** The loaded tables against the manifest, and this device's own row against its filters. */
export async function verifyLoaded(
  client: PoolClient,
  m: Manifest,
  model: DataModel,
  mac: string,
): Promise<TableDigest[]> {
  const digests = await digestTables(client, localSelectSql, undefined, model.tables);
  const drift = compareDigests(m.tables, digests);
  if (drift.length > 0)
    throw new AppError('HASH_MISMATCH', `loaded tables differ from the manifest: ${drift.join(', ')}`);
  // A wipe holds nothing, this device's row neither; its signature named the device (filters).
  if (m.wipe) return digests;
  const own = await findLocalDevice(client, mac);
  if (!own) throw new AppError('SNAPSHOT_INVALID', `snapshot does not hold this device (${mac})`);
  if (own.id !== m.filters.deviceId || own.locationId !== m.filters.locationId) {
    throw new AppError(
      'MANIFEST_NOT_FOR_DEVICE',
      `manifest ${m.manifestId} names device ${m.filters.deviceId}, this edge (${mac}) is ${own.id}`,
    );
  }
  return digests;
}
