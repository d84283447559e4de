/**
 * Pieces sent in the snapshot answer itself (docs/protocol.md, "Inline pieces"): for an edge
 * that holds nothing and asks for them, when every piece of its manifest is in memory and
 * they are small. A first sync is then one request instead of two; the piece fetch it saves
 * cost Central and its PostgreSQL about a third of a first sync (an HTTP request, its audit
 * row and outcome, the manifest's lookup, the credential check).
 */
import type { DataModel } from '../../contract/data-model.ts';
import type { Piece } from '../../contract/pieces.ts';
import type { PieceFrame, PiecesEndFrame } from '../../contract/wire.ts';
import type { ScopeMemory } from './memory/memory.ts';

export interface InlinePiece {
  frame: PieceFrame;
  rows: Buffer;
}

/**
 * Every piece of `pieces` with its rows, in contract order, or undefined when one is not in
 * memory or they add up to more than `inlinePiecesMaxBytes` (INLINE_PIECES_KB). The answer is
 * made in memory and compressed in one call, so that bounds what each answer holds; a larger
 * scope is fetched by pieces, which resume after a cut. Taken from the cache now, so an
 * eviction cannot lose them.
 */
export function inlinePieces(
  deps: { memory: ScopeMemory; inlinePiecesMaxBytes: number },
  model: DataModel,
  pieces: ReadonlyMap<string, readonly Piece[]>,
): InlinePiece[] | undefined {
  if (deps.inlinePiecesMaxBytes === 0) return undefined;
  const out: InlinePiece[] = [];
  let bytes = 0;
  for (const def of model.tables) {
    for (const [index, p] of (pieces.get(def.name) ?? []).entries()) {
      const rows = deps.memory.pieceRows(def.name, p);
      bytes += rows?.length ?? 0;
      if (!rows || bytes > deps.inlinePiecesMaxBytes) return undefined;
      out.push({ frame: { table: def.name, index, rowCount: p.rows }, rows });
    }
  }
  return out;
}

/** The lines after the manifest: each piece's frame and rows, then the pieces' end line. */
export function* inlineLines(inline: readonly InlinePiece[]): Generator<Buffer> {
  for (const { frame, rows } of inline) {
    yield Buffer.from(JSON.stringify(frame) + '\n');
    yield rows;
  }
  const end: PiecesEndFrame = { end: true, pieces: inline.length };
  yield Buffer.from(JSON.stringify(end) + '\n');
}
