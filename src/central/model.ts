/**
 * Central's domain types, and the one place where database rows become domain
 * objects and domain objects become wire objects.
 */
import type { AckBody, AckResponse, Manifest } from '../contract/wire.ts';
import type { TableDigest } from '../contract/canonical.ts';
import { normalizeMac, MAC_FORMS } from '../contract/mac.ts';
import { pieceToWire, type Piece } from '../contract/pieces.ts';
import { AppError } from '../platform/errors.ts';

/** A MAC from the wire or the command line, in its one stored form; INVALID_MAC otherwise. */
export function requireMac(text: string): string {
  const mac = normalizeMac(text);
  if (!mac)
    throw new AppError(
      'INVALID_MAC',
      `not a MAC address: ${JSON.stringify(text.slice(0, 64))}; expected ${MAC_FORMS}`,
    );
  return mac;
}

export interface Device {
  id: string;
  mac: string;
  locationId: string;
  companyId: string;
  enabled: boolean;
}

export interface DeviceRow {
  id: string;
  mac: string;
  location_id: string;
  company_id: string;
  is_enabled: boolean;
}

export function deviceFromRow(row: DeviceRow): Device {
  return {
    id: row.id,
    mac: row.mac,
    locationId: row.location_id,
    companyId: row.company_id,
    enabled: row.is_enabled,
  };
}

export interface ManifestHeader {
  manifestId: string;
  deviceId: string;
  mac: string;
  generatedAt: Date;
  expiresAt: Date;
}

export interface ManifestHeaderRow {
  manifest_id: string;
  device_id: string;
  mac: string;
  generated_at: Date;
  expires_at: Date;
}

export function manifestHeaderFromRow(row: ManifestHeaderRow): ManifestHeader {
  return {
    manifestId: row.manifest_id,
    deviceId: row.device_id,
    mac: row.mac,
    generatedAt: row.generated_at,
    expiresAt: row.expires_at,
  };
}

export function manifestToWire(input: {
  manifestId: string;
  generatedAt: Date;
  expiresAt: Date;
  schemaVersion: number;
  tables: readonly TableDigest[];
  globalSha256: string;
  device: Device;
  rowsIncluded: boolean;
  /** The pieces of each table to load, when the edge asked for them. */
  pieces?: ReadonlyMap<string, readonly Piece[]> | undefined;
  /** The request's nonce, when the edge sent one (src/edge/sync/manifest-clock.ts). */
  requestNonce?: string | undefined;
  /** The change is held by release control: the device keeps what it holds (docs/releases.md). */
  held?: Manifest['held'] | undefined;
  /** Every table empty, by order of an operator: the device must not hold this data (docs/releases.md). */
  wipe?: Manifest['wipe'] | undefined;
}): Manifest {
  return {
    manifestId: input.manifestId,
    generatedAt: input.generatedAt.toISOString(),
    expiresAt: input.expiresAt.toISOString(),
    schemaVersion: input.schemaVersion,
    tables: input.tables.map(({ name, rowCount, sha256 }) => ({ name, rowCount, sha256 })),
    globalSha256: input.globalSha256,
    filters: {
      companyId: input.device.companyId,
      locationId: input.device.locationId,
      deviceId: input.device.id,
    },
    rowsIncluded: input.rowsIncluded,
    ...(input.requestNonce === undefined ? {} : { requestNonce: input.requestNonce }),
    ...(input.held ? { held: input.held } : {}),
    ...(input.wipe ? { wipe: input.wipe } : {}),
    ...(input.pieces
      ? { pieces: Object.fromEntries([...input.pieces].map(([name, list]) => [name, list.map(pieceToWire)])) }
      : {}),
  };
}

export interface AckRow {
  manifest_id: string;
  result: 'Success' | 'Failed';
  completed_at: Date;
}

export function ackToWire(row: AckRow): AckResponse {
  return { manifestId: row.manifest_id, result: row.result, completedAt: row.completed_at.toISOString() };
}

export type { AckBody };
