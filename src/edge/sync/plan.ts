/**
 * What a manifest's pieces mean for this edge: per table, kept (its hash matches what the
 * edge holds), patched (delta: only its changed pieces' key ranges are replaced; the held
 * pieces say which) or reloaded (full), and which pieces the load needs.
 */
import type { TableDigest } from '../../contract/canonical.ts';
import type { DataModel } from '../../contract/data-model.ts';
import { pieceFromWire, type Piece } from '../../contract/pieces.ts';
import type { TableDef } from '../../contract/tables.ts';
import type { Manifest } from '../../contract/wire.ts';
import { AppError } from '../../platform/errors.ts';
import type { HeldPieces } from '../repo/pieces.ts';

export interface TablePlan {
  def: TableDef;
  expected: TableDigest;
  mode: 'keep' | 'full' | 'delta';
  /** The table's pieces per the manifest (empty when kept). */
  pieces: Piece[];
  /** Indexes of the pieces to load: all of them (full) or the changed ones (delta). */
  load: number[];
}

export interface TransferStats {
  fetches: number;
  piecesFetched: number;
  piecesReused: number;
  piecesKept: number;
  piecesRefetched: number;
  rowsDeleted: number;
}

/**
 * `held`: the pieces of the tables as this edge holds them, or undefined when what it holds
 * is in doubt or cannot be patched (every changed table is then reloaded whole).
 */
export function planLoad(
  m: Manifest,
  model: DataModel,
  heldTables: readonly TableDigest[] | undefined,
  held: ReadonlyMap<string, HeldPieces> | undefined,
): TablePlan[] {
  return model.tables.map((def, i) => {
    const expected = m.tables[i]!;
    const wire = m.pieces?.[def.name];
    const holds = heldTables?.find((t) => t.name === def.name);
    if (!wire) {
      if (holds?.sha256 !== expected.sha256)
        throw new AppError(
          'SNAPSHOT_INVALID',
          `manifest lists no pieces for ${def.name}, which this edge lacks`,
        );
      return { def, expected, mode: 'keep', pieces: [], load: [] };
    }
    const pieces = checkedPieces(def, expected, wire);
    const mine = held?.get(def.name);
    if (!mine || !holds || mine.tableSha256 !== holds.sha256 || pieces.length === 0)
      return { def, expected, mode: 'full', pieces, load: pieces.map((_, j) => j) };
    // Unchanged: same id and same lower bound, so the rows held in its range are exactly its rows.
    const same = new Set(mine.pieces.map((p, j) => `${j === 0 ? '' : mine.pieces[j - 1]!.last}|${p.id}`));
    const load = pieces.flatMap((p, j) =>
      same.has(`${j === 0 ? '' : pieces[j - 1]!.last}|${p.id}`) ? [] : [j],
    );
    return { def, expected, mode: 'delta', pieces, load };
  });
}

function checkedPieces(def: TableDef, expected: TableDigest, wire: NonNullable<Manifest['pieces']>[string]) {
  const pieces = wire.map(pieceFromWire);
  const rows = pieces.reduce((n, p) => n + p.rows, 0);
  const ordered = pieces.every((p, j) => j === 0 || p.last > pieces[j - 1]!.last);
  const width = def.primaryKey.length;
  if (rows !== expected.rowCount || !ordered || pieces.some((p) => p.last.split('\t').length !== width))
    throw new AppError(
      'SNAPSHOT_INVALID',
      `the pieces of ${def.name} do not describe its ${expected.rowCount} rows`,
    );
  return pieces;
}
