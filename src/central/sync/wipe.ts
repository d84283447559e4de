/**
 * The wipe answer (docs/releases.md, "Wipe"): a signed manifest whose tables are all empty,
 * marked `wipe`. An edge loads it as any other answer (every table emptied in one
 * transaction, hashes checked, ledger row, NOTIFY). An edge of an earlier release refuses it
 * (its own row is missing: SNAPSHOT_INVALID) and keeps its data: upgrade before relying on
 * wipes. Its freshness (request nonce, generatedAt) keeps a recorded wipe from being played again.
 */
import { emptyDigests, globalSha256, type TableDigest } from '../../contract/canonical.ts';
import type { DataModel } from '../../contract/data-model.ts';
import type { Piece } from '../../contract/pieces.ts';
import type { Queryable } from '../../platform/db.ts';

export const emptyTables = (model: DataModel): TableDigest[] => emptyDigests(model.tables);

const emptyGlobals = new Map<number, string>();

/** The global hash of every table empty: what a wiped (or expired) edge holds, which is nothing to keep. */
export function emptyGlobal(model: DataModel): string {
  let global = emptyGlobals.get(model.version);
  if (global === undefined) emptyGlobals.set(model.version, (global = globalSha256(emptyTables(model))));
  return global;
}

/** For a pieces edge: no piece for every table it holds rows of (a table it holds empty is kept). */
export function emptyPieces(
  tables: readonly TableDigest[],
  known: Partial<Record<string, string>> | undefined,
): Map<string, readonly Piece[]> {
  return new Map(tables.filter((t) => known?.[t.name] !== t.sha256).map((t) => [t.name, []]));
}

/** The rows of each table, none: the body reads nothing. */
export function noRows(model: DataModel): Map<string, Buffer[]> {
  return new Map(model.tables.map((def) => [def.name, []]));
}

/** Which manifest carried the wipe last: its acknowledgement says the device emptied its tables. */
export async function recordWipeSent(db: Queryable, deviceId: string, manifestId: string): Promise<void> {
  await db.query(
    'UPDATE device_wipes SET last_manifest_id = $2, last_sent_at = now() WHERE device_id = $1::uuid',
    [deviceId, manifestId],
  );
}
