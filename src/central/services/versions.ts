/**
 * What an edge runs, from the headers of its request, and which data-model versions this
 * Central serves. Serving the version before too (projecting the snapshot into its
 * tables and columns, so a fleet upgrades Central first and then edges in waves) is not
 * built yet: until then Central serves its own version only, and says so to the others.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { SCHEMA_VERSION, SCHEMA_VERSION_HEADER, SOFTWARE_VERSION_HEADER } from '../../contract/wire.ts';
import { AppError } from '../../platform/errors.ts';

export interface ReportedVersions {
  /** undefined: the edge did not say (it predates the header, so it is at version 1). */
  schemaVersion?: number;
  softwareVersion?: string;
  /** The header was there but not a version: refused once the request is audited. */
  malformed?: string;
}

export const SERVED_SCHEMA_VERSIONS: readonly number[] = [SCHEMA_VERSION];

const one = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

export function reportedVersions(headers: IncomingHttpHeaders): ReportedVersions {
  const schema = one(headers[SCHEMA_VERSION_HEADER]);
  const software = one(headers[SOFTWARE_VERSION_HEADER]);
  const reported: ReportedVersions = {};
  // Printable ASCII only, so the audit and the dashboard show what was sent and nothing else.
  if (software !== undefined) reported.softwareVersion = software.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
  if (schema === undefined) return reported;
  if (/^[1-9][0-9]{0,3}$/.test(schema)) reported.schemaVersion = Number(schema);
  else
    reported.malformed = `${SCHEMA_VERSION_HEADER} must be a whole number, got ${JSON.stringify(schema.slice(0, 20))}`;
  return reported;
}

/** Throws unless this Central can serve the edge's schema version. */
export function requireServedSchema(reported: ReportedVersions): void {
  if (reported.malformed) throw new AppError('INVALID_INPUT', reported.malformed);
  const version = reported.schemaVersion ?? 1;
  if (!SERVED_SCHEMA_VERSIONS.includes(version)) {
    throw new AppError(
      'SCHEMA_VERSION_UNSUPPORTED',
      `this Central serves schema versions ${SERVED_SCHEMA_VERSIONS.join(' and ')}; the edge is at ${version}: ` +
        (version > SCHEMA_VERSION ? 'upgrade Central first' : 'upgrade the edge'),
    );
  }
}
