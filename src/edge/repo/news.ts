/**
 * News for the Jetson's other services: after a sync that changed data, one NOTIFY on
 * DATA_CHANGED_CHANNEL, sent inside the load's transaction so PostgreSQL delivers it only
 * if, and once, the new data is committed. A listener refreshes its caches instead of
 * polling (README, "News for local apps"; the payload is documented in docs/protocol.md).
 */
import type { TableDigest } from '../../contract/canonical.ts';
import type { Queryable } from '../../platform/db.ts';

export const DATA_CHANGED_CHANNEL = 'dbupdate_data_changed';

export interface DataChanged {
  manifestId: string;
  /** Tables whose content differs from what the edge held before, in load order. */
  tables: string[];
  committedAt: string;
}

/** The tables of `now` whose hash differs from `before` (every table when nothing was held). */
export function changedTables(
  before: readonly TableDigest[] | undefined,
  now: readonly TableDigest[],
): string[] {
  const held = new Map((before ?? []).map((t) => [t.name, t.sha256]));
  return now.filter((t) => held.get(t.name) !== t.sha256).map((t) => t.name);
}

export async function notifyDataChanged(db: Queryable, news: DataChanged): Promise<void> {
  await db.query('SELECT pg_notify($1::text, $2::text)', [DATA_CHANGED_CHANNEL, JSON.stringify(news)]);
}
