/**
 * The sync's decisions, pure: what the edge offers Central, whether a manifest changes
 * anything, and per table how the load treats it. The database answers the questions
 * (run.ts asks them); this file only decides.
 *
 * What to offer (offerFor), at the start of a sync:
 *
 * | --full | a doubt failure since the last load | load mode        | offers its global hash | offers its tables |
 * |--------|-------------------------------------|------------------|------------------------|-------------------|
 * | yes    | (not asked)                         | any              | no                     | no                |
 * | no     | yes                                 | any              | no                     | no                |
 * | no     | no                                  | whole            | yes                    | no                |
 * | no     | no                                  | replica/deferred | yes                    | yes               |
 *
 * A doubt failure is one whose code is in DOUBT_CODES or whose reason is in DOUBT_REASONS
 * (errors.ts). An edge that offers nothing (or holds nothing yet) asks for the pieces inline.
 *
 * Whether the manifest changes anything (isUnchanged): no rows in it, or the global hash
 * offered equals the manifest's: unchanged, nothing loaded; else the tables are planned.
 *
 * Per table (planLoad), M = the manifest, H = what the edge holds:
 *
 * | M lists its pieces | H's table hash   | H's pieces describe H's table | mode    | loads                                  |
 * |--------------------|------------------|-------------------------------|---------|----------------------------------------|
 * | no                 | equals M's       | any                           | keep    | nothing                                |
 * | no                 | differs, or none | any                           | refused | SNAPSHOT_INVALID                       |
 * | yes, 0 pieces      | any              | any                           | full    | nothing (the table is emptied)         |
 * | yes                | not offered      | any                           | full    | every piece                            |
 * | yes                | offered          | no, or none held              | full    | every piece                            |
 * | yes                | offered          | yes                           | delta   | the pieces whose id or lower bound differ |
 *
 * M's pieces must add up to its row count, in key order, with keys as wide as the
 * primary key: else SNAPSHOT_INVALID.
 */
import type { TableDigest } from '../../contract/canonical.ts';
import type { DataModel } from '../../contract/data-model.ts';
import { pieceFromWire, type Piece } from '../../contract/pieces.ts';
import type { TableDef } from '../../contract/tables.ts';
import type { Manifest } from '../../contract/wire.ts';
import { AppError, type ErrorCode } from '../../platform/errors.ts';
import type { HeldPieces } from '../repo/pieces.ts';
import type { LoadMode } from '../repo/tables.ts';
import type { SyncState } from '../model.ts';
import type { SyncReason } from './errors.ts';

/**
 * The failures that cast doubt on the data the edge holds: its tables were found to differ
 * from a manifest, a load failed locally, or a process died while loading. Any other
 * failure (Central unreachable, a refusal, a cut or malformed stream, an expired manifest)
 * rolled back before touching anything the edge trusted, so the next sync may still offer
 * what it holds, and a fleet coming back from a Central outage reloads nothing.
 */
export const DOUBT_CODES: readonly ErrorCode[] = [
  'HASH_MISMATCH',
  'LOAD_FAILED',
  'SYNC_INTERRUPTED',
  'LOCAL_DRIFT',
];

/**
 * A snapshot that breaks foreign keys against tables the edge kept may be the kept rows'
 * fault as much as the sent ones': in doubt too (its code stays SNAPSHOT_INVALID).
 */
export const DOUBT_REASONS: readonly SyncReason[] = ['KEPT_TABLES_BROKEN'];

export interface Offer {
  /** The global hash of the data held, so that Central may answer "unchanged". */
  hash: boolean;
  /** The hashes of the tables held, so that Central sends only the changed ones' pieces. */
  tables: boolean;
}

/** `inDoubt`: a doubt failure came after the last load (not asked with `full`). */
export function offerFor(full: boolean, inDoubt: boolean, loadMode: LoadMode): Offer {
  const hash = !full && !inDoubt;
  // Without a way to load a table alone, parents cannot be reloaded under kept children: reload all.
  return { hash, tables: hash && loadMode !== 'whole' };
}

export function isUnchanged(m: Manifest, offer: Offer, state: SyncState): boolean {
  return !m.rowsIncluded || (offer.hash && m.globalSha256 === state.lastGlobalSha256);
}

export interface TablePlan {
  def: TableDef;
  expected: TableDigest;
  mode: 'keep' | 'full' | 'delta';
  /** The table's pieces per the manifest (empty when kept). */
  pieces: Piece[];
  /** Indexes of the pieces to load: all of them (full) or the changed ones (delta). */
  load: number[];
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
