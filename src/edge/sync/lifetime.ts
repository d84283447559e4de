/**
 * The local data lifetime (DATA_LIFETIME_DAYS, off by default; docs/releases.md): an edge that
 * has had no successful or unchanged sync for that long empties its data tables, in one
 * transaction with a ledger row (`wiped`, trigger `lifetime`) and a NOTIFY, as a signed wipe
 * does. Data that Central could not confirm for so long is not kept. Afterwards the edge holds
 * empty tables and says so, so its next sync that reaches Central loads everything.
 *
 * "Confirmed" is the last manifest's `generatedAt`, Central's signed clock, not this device's
 * (a Jetson may boot with its clock behind and record a wrong time); and the ledger must hold
 * MIN_FAILURES failed syncs since, so that one brief failure after a clock jump wipes nothing.
 */
import { emptyDigests, globalSha256, type TableDigest } from '../../contract/canonical.ts';
import type { DataModel } from '../../contract/data-model.ts';
import type { PoolClient } from '../../platform/db.ts';
import type { Logger } from '../../platform/logger.ts';
import type { SyncState } from '../model.ts';
import {
  failuresSinceConfirmed,
  finishSync,
  insertSyncStart,
  insertSyncTables,
  setState,
} from '../repo/ledger.ts';
import { notifyDataChanged } from '../repo/news.ts';
import { replaceHeldPieces } from '../repo/pieces.ts';
import { emptyDataTables } from '../repo/tables.ts';

const DAY_MS = 86_400_000;
export const MIN_FAILURES = 3;

/** Whether data last confirmed at `state` is past its lifetime, and not emptied already. */
export function expired(
  state: SyncState,
  lifetimeDays: number,
  empty: string,
  failures: number,
  now: number,
): boolean {
  const confirmed = state.lastGeneratedAt;
  if (lifetimeDays <= 0 || confirmed === undefined || state.lastGlobalSha256 === empty) return false;
  return failures >= MIN_FAILURES && now - Date.parse(confirmed) >= lifetimeDays * DAY_MS;
}

/** Empties the data tables when their lifetime is over (the caller holds the sync lock); true when it did. */
export async function expireIfStale(
  client: PoolClient,
  model: DataModel,
  lifetimeDays: number,
  state: SyncState,
  log: Logger,
): Promise<boolean> {
  const tables: TableDigest[] = emptyDigests(model.tables);
  const empty = globalSha256(tables);
  if (!expired(state, lifetimeDays, empty, await failuresSinceConfirmed(client), Date.now())) return false;
  const started = performance.now();
  const syncId = await insertSyncStart(client, 'lifetime');
  await client.query('BEGIN');
  try {
    await emptyDataTables(client);
    await insertSyncTables(client, syncId, tables);
    for (const t of tables) await replaceHeldPieces(client, t.name, model.version, t.sha256, []);
    const durationMs = Math.round(performance.now() - started);
    await finishSync(client, syncId, {
      status: 'success',
      manifestId: null,
      durationMs,
      rowsLoaded: 0,
      wiped: true,
    });
    const committedAt = new Date().toISOString();
    await notifyDataChanged(client, {
      manifestId: `lifetime:${syncId}`,
      tables: tables.map((t) => t.name),
      committedAt,
      wiped: true,
    });
    await setState(client, { lastGlobalSha256: empty });
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
  log.warn(
    { event: 'sync.expired', lastConfirmedAt: state.lastGeneratedAt, lifetimeDays },
    `no sync confirmed this device's data for ${lifetimeDays} days (DATA_LIFETIME_DAYS): every table is empty now`,
  );
  return true;
}
