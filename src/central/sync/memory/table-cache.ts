/**
 * Table rows by content: the COPY text of one table of one scope, keyed by the table's name,
 * row count and SHA-256 (contract §3), so devices whose scopes hold identical content (the
 * devices of one location share every table but `devices`) are served from memory after
 * the first has read it; the same for the pieces of the pieces protocol. Bounded in bytes,
 * evicted least recently used; a table larger than a tenth of the bound is never kept.
 * Content-addressed, so an entry can never be stale.
 */
import { LRUCache } from 'lru-cache';
import type { TableDigest } from '../../../contract/canonical.ts';
import { chunkBytes } from '../../../contract/copy-text.ts';
import type { Piece } from '../../../contract/pieces.ts';

/**
 * Piece lists by table content, apart from the rows: small (about 150 bytes per 256 rows),
 * and needed for every manifest of the pieces protocol, including when rows are not kept.
 */
const PIECE_INDEX_BYTES = 32 * 2 ** 20;
const PIECE_BYTES = 160;
/** What an entry costs besides its bytes (key, map and list nodes): pieces are many and small. */
const ENTRY_OVERHEAD = 256;

export class TableCache {
  readonly #cache: LRUCache<string, Buffer[]> | undefined;
  readonly #maxEntryBytes: number;
  readonly #pieces = new LRUCache<string, readonly Piece[]>({
    maxSize: PIECE_INDEX_BYTES,
    sizeCalculation: (pieces) => Math.max(1, pieces.length * PIECE_BYTES),
  });

  constructor(maxBytes: number) {
    this.#maxEntryBytes = Math.floor(maxBytes / 10);
    this.#cache =
      maxBytes > 0
        ? new LRUCache({
            maxSize: maxBytes,
            sizeCalculation: (chunks) => ENTRY_OVERHEAD + chunkBytes(chunks),
          })
        : undefined;
  }

  static key(t: TableDigest): string {
    return `${t.name}|${t.rowCount}|${t.sha256}`;
  }

  /** The pieces of a table's content (src/contract/pieces.ts), once cut. */
  pieces(t: TableDigest): readonly Piece[] | undefined {
    return this.#pieces.get(TableCache.key(t));
  }

  setPieces(t: TableDigest, pieces: readonly Piece[]): void {
    this.#pieces.set(TableCache.key(t), pieces);
  }

  /**
   * The rows of one piece (COPY text), by content: a piece's id is the SHA-256 of its rows,
   * so the devices of one location, whose scopes cut into the same pieces, share them.
   */
  piece(table: string, p: Piece): Buffer | undefined {
    return this.#cache?.get(pieceKey(table, p))?.[0];
  }

  keepPiece(table: string, p: Piece, rows: Buffer): void {
    if (rows.length <= this.#maxEntryBytes) this.#cache?.set(pieceKey(table, p), [rows]);
  }

  /**
   * Keeps the pieces of one digest pass as they are cut, until the pass has kept as much as
   * one table may hold: a scope's small tables, not a huge one that would flush the cache.
   */
  pieceKeeper(): (table: string, p: Piece, rows: readonly Buffer[]) => void {
    let budget = this.#cache ? this.#maxEntryBytes : 0;
    return (table, p, rows) => {
      const bytes = chunkBytes(rows);
      if (bytes > budget) {
        budget = 0;
        return;
      }
      budget -= bytes;
      if (!this.#cache!.has(pieceKey(table, p))) this.keepPiece(table, p, ownCopy(rows));
    };
  }

  get(t: TableDigest): Buffer[] | undefined {
    return this.#cache?.get(TableCache.key(t));
  }

  /** A collector for rows as they stream; `keep()` once their count was checked. */
  collect(t: TableDigest): { add(chunk: Buffer): void; keep(): void } | undefined {
    if (!this.#cache) return undefined;
    const chunks: Buffer[] = [];
    let bytes = 0;
    return {
      add: (chunk) => {
        bytes += chunk.length;
        // Too large to keep: let go of what was gathered, or the stream would hold it to its end.
        if (bytes <= this.#maxEntryBytes) chunks.push(chunk);
        else chunks.length = 0;
      },
      keep: () => {
        if (bytes <= this.#maxEntryBytes) this.#cache!.set(TableCache.key(t), [ownCopy(chunks)]);
      },
    };
  }
}

/**
 * The bytes in one buffer of their own. COPY chunks are slices of the socket's reads, and a
 * small Buffer.concat is a slice of Node's shared 8 KB pool: a cache keeping either would hold
 * far more memory than it counts (a 150-byte piece kept an 8 KB slab; Central reached 1.2 GB).
 */
export function ownCopy(chunks: readonly Buffer[]): Buffer {
  const out = Buffer.allocUnsafeSlow(chunkBytes(chunks));
  let at = 0;
  for (const c of chunks) at += c.copy(out, at);
  return out;
}

const pieceKey = (table: string, p: Piece) => `piece|${table}|${p.rows}|${p.id}`;
