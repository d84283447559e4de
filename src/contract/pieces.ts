/**
 * Pieces (docs/protocol.md, "Pieces"): a table's COPY text rows, in primary-key order, cut
 * into runs whose ends are chosen by the rows' keys, not by their positions. A row ends a
 * piece when a hash of its key falls in 1 / PIECE_AVERAGE_ROWS of the range (or the piece
 * reached PIECE_MAX_ROWS or PIECE_MAX_BYTES), so inserting or deleting a row changes the
 * piece it lands in and leaves every other piece as it was: the edge fetches, stages and
 * replaces only those. A piece's id is the SHA-256 of its bytes, checked on arrival.
 *
 * Piece i covers the keys after piece i-1's last key up to and including its own; the
 * first has no lower bound. Keys are the primary-key fields of the row's COPY text,
 * joined by a tab: every key column is a uuid, whose lower-case text sorts as PostgreSQL
 * sorts the uuid, so keys compare as strings.
 */
import { createHash, type Hash } from 'node:crypto';
import { orderBy, type TableDef } from './tables.ts';

export const PIECE_AVERAGE_ROWS = 256;
export const PIECE_MAX_ROWS = 4096;
export const PIECE_MAX_BYTES = 1 << 20;

/** On the wire: `[id, rowCount, lastKey]`. */
export type PieceRef = [id: string, rows: number, last: string];

export interface Piece {
  id: string;
  rows: number;
  last: string;
}

export const pieceToWire = (p: Piece): PieceRef => [p.id, p.rows, p.last];
export const pieceFromWire = ([id, rows, last]: PieceRef): Piece => ({ id, rows, last });

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
/** A key as it travels: one uuid per key column, tab-separated. */
export const KEY_PATTERN = `^${UUID}(\t${UUID})*$`;

/**
 * A key range (after, last] for a COPY, which takes no bind parameters: the keys are bound
 * to transaction-local settings by KEY_RANGE_SQL (with `keyRangeParams`), and `keyRangeSql`
 * compares the table's key with them, each split into its uuids.
 */
export const KEY_RANGE_SQL =
  "SELECT set_config('dbupdate.after', $1::text, true), set_config('dbupdate.last', $2::text, true)";

export const keyRangeParams = (after: string | null, last: string): string[] => [after ?? '', last];

/** The condition on `def`'s key for the range bound by KEY_RANGE_SQL; no lower bound if `after` was null. */
export function keyRangeSql(def: TableDef, after: string | null): string {
  const bound = (op: '>' | '<=', setting: string) => {
    const parts = def.primaryKey.map(
      (_, i) => `split_part(current_setting('dbupdate.${setting}'), E'\\t', ${i + 1})::uuid`,
    );
    return `(${orderBy(def)}) ${op} (${parts.join(', ')})`;
  };
  return after === null ? bound('<=', 'last') : `${bound('>', 'after')} AND ${bound('<=', 'last')}`;
}

/** How many leading columns form the key; the table must list its key columns first, as uuids. */
function keyWidth(def: TableDef): number {
  const width = def.primaryKey.length;
  def.primaryKey.forEach((name, i) => {
    const col = def.columns[i];
    if (col?.name !== name || col.type !== 'uuid')
      throw new Error(`${def.name}: pieces need the uuid key columns first (${name})`);
  });
  return width;
}

const NL = 0x0a;
const TAB = 0x09;

/** Where the key ends in `line` (exclusive): before the `width`-th tab, or at the line's end. */
function keyEnd(buf: Buffer, start: number, end: number, width: number): number {
  let tabs = 0;
  for (let i = start; i < end; i++) if (buf[i] === TAB && ++tabs === width) return i;
  return end;
}

/** FNV-1a over the key's bytes, then murmur3's finaliser so every bit depends on every byte. */
function keyHash(buf: Buffer, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * COPY text lines out of chunks of any size, each with where its key ends: `onLine(buf,
 * start, end, keyEnd)` where `buf[start, end)` is the line with its newline and
 * `buf[start, keyEnd)` its key. A line split across chunks is joined into a new buffer
 * first; either way `buf` is never written again, so slices of it may be kept. Keys are
 * compared as bytes and made strings only where needed: this runs once per row.
 */
export class KeyedLines {
  readonly #width: number;
  #carry: Buffer | undefined;

  constructor(def: TableDef) {
    this.#width = keyWidth(def);
  }

  write(chunk: Buffer, onLine: (buf: Buffer, start: number, end: number, keyEnd: number) => void): void {
    let buf = chunk;
    if (this.#carry) {
      buf = Buffer.concat([this.#carry, chunk]);
      this.#carry = undefined;
    }
    let start = 0;
    for (let nl = buf.indexOf(NL); nl >= 0; nl = buf.indexOf(NL, start)) {
      onLine(buf, start, nl + 1, keyEnd(buf, start, nl, this.#width));
      start = nl + 1;
    }
    if (start < buf.length) this.#carry = Buffer.from(buf.subarray(start));
  }

  /** Bytes after the last newline: none in a well-formed table. */
  get pending(): number {
    return this.#carry?.length ?? 0;
  }
}

/**
 * Cuts one table's COPY text into pieces as it streams past (Central, in the digest pass).
 * With `onPiece`, each piece's rows are handed over as slices of the chunks written: a
 * keeper should copy them, or it holds whole chunks for a few rows.
 */
export class PieceCutter {
  readonly #lines: KeyedLines;
  readonly #pieces: Piece[] = [];
  readonly #onPiece: ((piece: Piece, rows: readonly Buffer[]) => void) | undefined;
  #rowSlices: Buffer[] = [];
  #hash: Hash = createHash('sha256');
  #rows = 0;
  #bytes = 0;
  /** The last row's key, as a slice (made a string only when a piece ends there). */
  #last: Buffer = Buffer.alloc(0);

  constructor(def: TableDef, onPiece?: (piece: Piece, rows: readonly Buffer[]) => void) {
    this.#lines = new KeyedLines(def);
    this.#onPiece = onPiece;
  }

  write(chunk: Buffer): void {
    this.#lines.write(chunk, (buf, start, end, keyEnd) => {
      const row = buf.subarray(start, end);
      this.#hash.update(row);
      if (this.#onPiece) this.#rowSlices.push(row);
      this.#rows++;
      this.#bytes += end - start;
      this.#last = buf.subarray(start, keyEnd);
      if (
        keyHash(buf, start, keyEnd) % PIECE_AVERAGE_ROWS === 0 ||
        this.#rows >= PIECE_MAX_ROWS ||
        this.#bytes >= PIECE_MAX_BYTES
      )
        this.#cut();
    });
  }

  #cut(): void {
    const piece = { id: this.#hash.digest('hex'), rows: this.#rows, last: this.#last.toString('latin1') };
    this.#pieces.push(piece);
    if (this.#onPiece) {
      this.#onPiece(piece, this.#rowSlices);
      this.#rowSlices = [];
    }
    this.#hash = createHash('sha256');
    this.#rows = 0;
    this.#bytes = 0;
  }

  end(): Piece[] {
    if (this.#lines.pending > 0) throw new Error('a row without its newline ends the table');
    if (this.#rows > 0) this.#cut();
    return this.#pieces;
  }
}

/** Index runs `[from, to]` (inclusive) of a sorted list of indexes, and back. */
export function toRuns(indexes: readonly number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const i of indexes) {
    const last = runs.at(-1);
    if (last && last[1] === i - 1) last[1] = i;
    else runs.push([i, i]);
  }
  return runs;
}

export function fromRuns(runs: readonly (readonly [number, number])[], limit: number): number[] {
  const out: number[] = [];
  for (const [from, to] of runs) {
    if (!(from <= to) || to >= limit || from < 0)
      throw new RangeError(`piece run [${from}, ${to}] is outside 0..${limit - 1}`);
    if (out.length > 0 && from <= out.at(-1)!) throw new RangeError('piece runs must be ascending and apart');
    for (let i = from; i <= to; i++) out.push(i);
  }
  return out;
}

/** SHA-256 of a piece's bytes, for the edge's check on arrival. */
export function pieceId(chunks: readonly Buffer[]): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
}
