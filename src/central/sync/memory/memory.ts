/**
 * What Central remembers between requests, behind one API: the request path asks it by what it
 * means (a device's digests at its scope version, a location's shared digests, a table's rows or
 * pieces by content) and never builds a key. Two stores hold it, each bounded and LRU:
 *
 * | entry                         | keyed by                                          | store            | exact because                                |
 * |-------------------------------|---------------------------------------------------|------------------|----------------------------------------------|
 * | a device's digests            | data model, device, location, company, scope version | digest-cache.ts | the version moves with any change to its scope |
 * | a location's shared digests   | data model, location, company, location version   | digest-cache.ts  | the same, for the tables its devices share    |
 * | a table's rows (or its pieces') | table, row count, SHA-256                       | table-cache.ts   | content-addressed                            |
 * | a table's piece list          | table, row count, SHA-256                         | table-cache.ts   | content-addressed                            |
 * | a piece's rows                | table, row count, piece id (SHA-256 of its rows)  | table-cache.ts   | content-addressed                            |
 *
 * Per process: replicas each keep their own, which is safe, since no entry can be stale.
 */
import type { TableDigest } from '../../../contract/canonical.ts';
import type { Piece } from '../../../contract/pieces.ts';
import type { Device } from '../../model.ts';
import { scopeVersionParts } from '../scope/version.ts';
import { DigestCache } from './digest-cache.ts';
import { TableCache } from './table-cache.ts';

export interface MemoryOptions {
  /** Devices' digests held (and as many locations' shared digests): DIGEST_CACHE_ENTRIES. */
  digestEntries: number;
  /** Bytes of rows held by content (TABLE_CACHE_MB); 0 keeps none (piece lists are kept apart). */
  tableBytes: number;
}

export class ScopeMemory {
  readonly #digests: DigestCache;
  readonly #tables: TableCache;

  constructor(options: MemoryOptions) {
    this.#digests = new DigestCache(options.digestEntries);
    this.#tables = new TableCache(options.tableBytes);
  }

  /** A device's digests at its scope version, for an edge of data model `model`. */
  digests(device: Device, version: string, model: number): TableDigest[] | undefined {
    return this.#digests.get(deviceKey(device, version, model));
  }

  keepDigests(device: Device, version: string, model: number, digests: TableDigest[]): void {
    this.#digests.set(deviceKey(device, version, model), digests);
  }

  /** The digests of the tables a device's location shares (all but `devices`), at its scope version. */
  sharedDigests(device: Device, version: string, model: number): TableDigest[] | undefined {
    return this.#digests.getShared(locationKey(device, scopeVersionParts(version).location, model));
  }

  keepSharedDigests(device: Device, version: string, model: number, digests: TableDigest[]): void {
    this.keepLocationDigests(device, scopeVersionParts(version).location, model, digests);
  }

  /** The same, by the location's version alone (a batch of locations reads no device's row). */
  keepLocationDigests(device: Device, locationVersion: string, model: number, digests: TableDigest[]): void {
    this.#digests.setShared(locationKey(device, locationVersion, model), digests);
  }

  /**
   * A table's rows (COPY text) by content: kept whole, or put together from its pieces. The
   * pieces are consecutive runs in key order, so their rows in order are the table's COPY text:
   * the rows a session's digest pass cut and kept need not be read again for the answer.
   */
  rows(t: TableDigest): Buffer[] | undefined {
    return this.#tables.get(t) ?? this.#fromPieces(t);
  }

  #fromPieces(t: TableDigest): Buffer[] | undefined {
    const pieces = this.#tables.pieces(t);
    if (!pieces) return undefined;
    const rows: Buffer[] = [];
    for (const p of pieces) {
      const piece = this.#tables.piece(t.name, p);
      if (!piece) return undefined;
      rows.push(piece);
    }
    return rows;
  }

  /** A collector for a table's rows as they stream; `keep()` once their count was checked. */
  collectRows(t: TableDigest): { add(chunk: Buffer): void; keep(): void } | undefined {
    return this.#tables.collect(t);
  }

  /** A table's piece list by content (src/contract/pieces.ts), once cut. */
  pieces(t: TableDigest): readonly Piece[] | undefined {
    return this.#tables.pieces(t);
  }

  keepPieces(t: TableDigest, pieces: readonly Piece[]): void {
    this.#tables.setPieces(t, pieces);
  }

  /** One piece's rows by content, shared by every device whose scope cuts into the same piece. */
  pieceRows(table: string, p: Piece): Buffer | undefined {
    return this.#tables.piece(table, p);
  }

  /** Keeps the pieces of one digest pass, or one run read for an answer, up to what one table may hold. */
  pieceKeeper(): (table: string, p: Piece, rows: readonly Buffer[]) => void {
    return this.#tables.pieceKeeper();
  }
}

/** By device, scope version and data-model version (an N-1 edge's digests are of fewer columns). */
const deviceKey = (device: Device, version: string, model: number) =>
  `v${model}|${device.id}|${device.locationId}|${device.companyId}|${version}`;

const locationKey = (device: Device, locationVersion: string, model: number) =>
  `v${model}|${device.locationId}|${device.companyId}|${locationVersion}`;
