/**
 * How a device-sync answer is made: one pure decision from what the device holds and what
 * Central's memory knows now. The request asks again after each step that learns more (its
 * own row read, a shared batch read), so the whole choice lives in this table, first match
 * wins:
 *
 * | # | the device's digests (at its scope version) | its shared tables' digests    | own row | → decision       | slots held            |
 * |---|---------------------------------------------|-------------------------------|---------|------------------|-----------------------|
 * | 1 | in memory, and its global hash is held      | –                             | –       | `unchanged`      | none                  |
 * | 2 | in memory; every lacked piece in memory     | –                             | –       | `pieces`         | none (a pieces edge)  |
 * | 3 | in memory; every lacked table's rows too    | –                             | –       | `rows`           | answer (a rows edge)  |
 * | 4 | not in memory                               | in memory (with pieces: theirs)| not read| `own-row`        | answer                |
 * | 5 | not in memory                               | not in memory, a pieces edge, a batch reader | not read | `own-row` (batch first) | answer |
 * | 6 | otherwise                                   | –                             | –       | `session`        | answer and session (a rows edge whose rows the pass kept: answer alone after it) |
 *
 * `pieces` and `rows` answer from memory; `own-row` completes the shared digests with the
 * device's own row read in a batch (no session); `session` opens a snapshot session, which
 * reads whatever memory lacks (a rows edge is then sent the rows its digest pass kept, and the
 * session ends there). A rows edge whose shared tables are not in memory goes straight to a
 * session: its rows must be read in one anyway.
 */

/** What the request knows when it asks. */
export interface Known {
  /** The device loads by pieces (it fetches the rows from /pieces, or takes them inline). */
  pieces: boolean;
  /** The device's own digests: not in memory, or what the device lacks of them. */
  digests: 'absent' | 'held' | 'lacking';
  /** With digests: every piece (pieces edge) or every table's rows (rows edge) it lacks is in memory. */
  lackedInMemory: boolean;
  /** The digests of the tables its location shares (and, for a pieces edge, their lacked pieces) are in memory. */
  sharedInMemory: boolean;
  /** Locations' shared tables can be read in batches (SHARED_SCOPE_BATCH). */
  batchReader: boolean;
  /** The own-row step was already taken for this request. */
  ownRowRead: boolean;
}

export type Decision =
  | { kind: 'unchanged' }
  | { kind: 'pieces' }
  | { kind: 'rows' }
  | { kind: 'own-row'; batchFirst: boolean }
  | { kind: 'session' };

export function plan(k: Known): Decision {
  if (k.digests === 'held') return { kind: 'unchanged' };
  if (k.digests === 'lacking' && k.lackedInMemory) return { kind: k.pieces ? 'pieces' : 'rows' };
  if (k.digests === 'absent' && !k.ownRowRead) {
    if (k.sharedInMemory) return { kind: 'own-row', batchFirst: false };
    if (k.pieces && k.batchReader) return { kind: 'own-row', batchFirst: true };
  }
  return { kind: 'session' };
}

/** Whether a decision's answer sends rows or reads them (and so holds an answer slot). */
export function holdsAnswerSlot(d: Decision): boolean {
  return d.kind !== 'unchanged' && d.kind !== 'pieces';
}
