/**
 * What an edge runs, from the headers of its request, and which data-model versions this
 * Central serves: its own (N) and the one before (N-1), whose snapshot is the projection
 * of Central's tables onto that version's tables and columns. So a fleet upgrades Central
 * first and its edges in waves; an edge older than N-1 (or newer than N) is refused with
 * SCHEMA_VERSION_UNSUPPORTED, audited.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { DATA_MODELS, requireProjection, type DataModel } from '../../contract/data-model.ts';
import { SCHEMA_VERSION_HEADER, SOFTWARE_VERSION_HEADER } from '../../contract/wire.ts';
import { AppError } from '../../platform/errors.ts';

export interface ReportedVersions {
  /** undefined: the edge did not say (it predates the header, so it is at version 1). */
  schemaVersion?: number;
  softwareVersion?: string;
  /** The header was there but not a version: refused once the request is audited. */
  malformed?: string;
}

/** The models a Central serves: its own, newest, and the one before it when it knows it. */
export class ServedModels {
  readonly newest: DataModel;
  readonly #served: ReadonlyMap<number, DataModel>;

  /** `known`: the data-model versions this code describes, oldest first. */
  constructor(known: readonly DataModel[] = DATA_MODELS) {
    const newest = known.at(-1);
    if (!newest) throw new Error('a Central serves at least one data model');
    const previous = known.find((m) => m.version === newest.version - 1);
    if (previous) requireProjection(newest, previous);
    this.newest = newest;
    this.#served = new Map([newest, ...(previous ? [previous] : [])].map((m) => [m.version, m]));
  }

  get versions(): number[] {
    return [...this.#served.keys()].sort((a, b) => a - b);
  }

  /** The model to answer the edge in; throws unless this Central serves its version. */
  forEdge(reported: ReportedVersions): DataModel {
    if (reported.malformed) throw new AppError('INVALID_INPUT', reported.malformed);
    const version = reported.schemaVersion ?? 1;
    const model = this.#served.get(version);
    if (model) return model;
    throw new AppError(
      'SCHEMA_VERSION_UNSUPPORTED',
      `this Central serves schema versions ${this.versions.join(' and ')}; the edge is at ${version}: ` +
        (version > this.newest.version ? 'upgrade Central first' : 'upgrade the edge'),
    );
  }
}

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
