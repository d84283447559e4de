/**
 * The tables a location's devices share (all but `devices`), read and hashed for many
 * locations in one snapshot session. In a first-sync storm the first device of each
 * location finds nothing cached, and a session of its own cost eleven round trips and
 * seven statements while it held a slot: early in the storm, when most locations are cold,
 * those sessions passed fewer devices a second than arrived, and requests were shed
 * (docs/scaling.md). Batched, the same reads cost nine round trips per batch.
 *
 * Consistency: a batch reads each location's version in its own transaction, and its
 * digests are cached under that version. A request uses them only if that is the version
 * it read with its audit row; otherwise (the location changed in between, or a replica is
 * behind) it opens a session of its own, as before.
 */
import { context, ROOT_CONTEXT, trace, type SpanContext } from '@opentelemetry/api';
import { TableHasher, type TableDigest } from '../../../contract/canonical.ts';
import type { DataModel } from '../../../contract/data-model.ts';
import { PieceCutter, type Piece } from '../../../contract/pieces.ts';
import type { TableDef } from '../../../contract/tables.ts';
import { Batcher, type BatcherOptions } from '../../../platform/batcher.ts';
import type { PoolClient } from '../../../platform/db.ts';
import type { Logger } from '../../../platform/logger.ts';
import { step } from '../../../platform/step.ts';
import type { Device } from '../../model.ts';
import { copySharedScopes, setLocationsAndReadVersions } from '../repo/scope.ts';
import { scopeVersionParts } from './version.ts';
import type { SnapshotSource } from '../sources/snapshot-source.ts';
import type { ScopeMemory } from '../memory/memory.ts';

/**
 * Two batches in flight, started at least 5 ms apart: the requests that wait for one hold
 * their slots, so one batch takes as many locations as there are slots waiting.
 */
export const SHARED_SCOPE_BATCHES: BatcherOptions = { maxItems: 64, concurrency: 2, minGapMs: 5 };

const TAB = 0x09;
const NL = 0x0a;

interface Wanted {
  device: Device;
  /** The location's part of the scope version the request read. */
  locationVersion: string;
  model: DataModel;
  /** The span of the request's step that waits for it (the batch's span links to it). */
  waiting: SpanContext | undefined;
}

export class SharedScopeReader {
  readonly #source: SnapshotSource;
  readonly #memory: ScopeMemory;
  readonly #log: Logger;
  readonly #batcher: Batcher<Wanted, boolean>;

  constructor(source: SnapshotSource, memory: ScopeMemory, log: Logger, options = SHARED_SCOPE_BATCHES) {
    this.#source = source;
    this.#memory = memory;
    this.#log = log;
    this.#batcher = new Batcher((items) => this.#read(items), options);
  }

  /**
   * Reads `device`'s location's shared tables with other locations', into the digest cache
   * (and their pieces into the table cache). True when they are cached for `version`; false
   * when the location is at another version now, or the batch failed.
   */
  read(device: Device, version: string, model: DataModel): Promise<boolean> {
    return this.#batcher.add({
      device,
      locationVersion: scopeVersionParts(version).location,
      model,
      waiting: trace.getActiveSpan()?.spanContext(),
    });
  }

  async #read(items: readonly Wanted[]): Promise<boolean[]> {
    let read: Map<string, string>;
    try {
      // A step of its own, in a trace of its own: it serves many requests, not the one that
      // started it. Its span links to theirs.
      read = await context.with(ROOT_CONTEXT, () =>
        step(this.#log, 'scope.shared_batch', { requests: items.length }, async (open) => {
          open.span.addLinks(items.flatMap((w) => (w.waiting ? [{ context: w.waiting }] : [])));
          const versions = await this.#source.batch((session) => this.#readAll(session.client, items));
          open.annotate({ locations: versions.size });
          return versions;
        }),
      );
    } catch {
      // Logged by the step; each request opens a session of its own, as without batches.
      return items.map(() => false);
    }
    return items.map((w) => read.get(w.device.locationId) === w.locationVersion);
  }

  /** Every location's version as read, its digests cached under it for every model asked for. */
  async #readAll(client: PoolClient, items: readonly Wanted[]): Promise<Map<string, string>> {
    const locations = [...new Map(items.map((w) => [w.device.locationId, w.device])).values()];
    const versions = await setLocationsAndReadVersions(
      client,
      locations.map((d) => d.locationId),
    );
    for (const model of new Set(items.map((w) => w.model))) {
      const digests = await this.#hash(client, model, locations.length);
      locations.forEach((device, i) =>
        this.#memory.keepLocationDigests(device, versions[i]!, model.version, digests[i]!),
      );
    }
    return new Map(locations.map((d, i) => [d.locationId, versions[i]!]));
  }

  /** Per location, in order, the digests of `model`'s shared tables, each cut into pieces on the way. */
  #hash(client: PoolClient, model: DataModel, count: number): Promise<TableDigest[][]> {
    const keepers = Array.from({ length: count }, () => this.#memory.pieceKeeper());
    return hashLocations(
      client,
      model,
      count,
      (_, __, digest, pieces) => this.#memory.keepPieces(digest, pieces),
      (i) => (def, piece, rows) => keepers[i]!(def.name, piece, rows),
    );
  }
}

/**
 * Per location set by setLocationsAndReadVersions, in order, the digests of `model`'s shared
 * tables, each cut into pieces on the way: `onTable` is told each table's digest and pieces,
 * `onPiece(i)` (optional) each piece's rows. Shared by the batched reads and the release preview.
 */
export async function hashLocations(
  client: PoolClient,
  model: DataModel,
  count: number,
  onTable: (location: number, def: TableDef, digest: TableDigest, pieces: Piece[]) => void,
  onPiece?: (location: number) => (def: TableDef, piece: Piece, rows: readonly Buffer[]) => void,
): Promise<TableDigest[][]> {
  const digests: TableDigest[][] = Array.from({ length: count }, () => []);
  for (const def of model.tables) {
    if (def.name === 'devices') continue;
    const hashers = digests.map(() => new TableHasher(def));
    const cutters = digests.map((_, i) => {
      const keep = onPiece?.(i);
      return new PieceCutter(def, keep ? (piece, rows) => keep(def, piece, rows) : undefined);
    });
    const lines = new LocationLines(def);
    for await (const chunk of copySharedScopes(client, def))
      lines.write(chunk as Buffer, (i, rows) => {
        const hasher = hashers[i];
        if (!hasher) throw new Error(`${def.name}: a row of location ${i + 1} of ${count}`);
        hasher.write(rows);
        cutters[i]!.write(rows);
      });
    lines.end();
    hashers.forEach((hasher, i) => {
      const digest = hasher.digest();
      onTable(i, def, digest, cutters[i]!.end());
      digests[i]!.push(digest);
    });
  }
  return digests;
}

/**
 * Splits `copySharedScopes` text by its leading field: each location's rows (contiguous,
 * in key order) handed on without it, as whole lines, a chunk's worth at a time.
 */
class LocationLines {
  readonly #def: TableDef;
  #carry: Buffer | undefined;

  constructor(def: TableDef) {
    this.#def = def;
  }

  write(chunk: Buffer, onRows: (location: number, rows: Buffer) => void): void {
    const buf = this.#carry ? Buffer.concat([this.#carry, chunk]) : chunk;
    this.#carry = undefined;
    let run: Buffer[] = [];
    let current = -1;
    let start = 0;
    for (let nl = buf.indexOf(NL); nl >= 0; nl = buf.indexOf(NL, start)) {
      const tab = buf.indexOf(TAB, start);
      if (tab < 0 || tab > nl) throw new Error(`${this.#def.name}: a line without its location`);
      const location = Number(buf.toString('latin1', start, tab)) - 1;
      if (location !== current) {
        if (run.length > 0) onRows(current, Buffer.concat(run));
        run = [];
        current = location;
      }
      run.push(buf.subarray(tab + 1, nl + 1));
      start = nl + 1;
    }
    if (run.length > 0) onRows(current, Buffer.concat(run));
    if (start < buf.length) this.#carry = Buffer.from(buf.subarray(start));
  }

  end(): void {
    if (this.#carry) throw new Error(`${this.#def.name}: a row without its newline ends the COPY`);
  }
}
