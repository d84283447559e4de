/**
 * News for the Jetson's other services: after a sync that changed data, one NOTIFY on
 * DATA_CHANGED_CHANNEL, sent inside the load's transaction so PostgreSQL delivers it only
 * if, and once, the new data is committed. A listener refreshes its caches instead of
 * polling (README, "News for local apps"; the payload is documented in docs/protocol.md), and
 * checks a notice against dbupdate_news before trusting it.
 */
import type { TableDigest } from '../../contract/canonical.ts';
import type { Queryable } from '../../platform/db.ts';

export const DATA_CHANGED_CHANNEL = 'dbupdate_data_changed';

export interface DataChanged {
  manifestId: string;
  /** Tables whose content differs from what the edge held before, in load order. */
  tables: string[];
  committedAt: string;
  /** Every table was emptied on an operator's order or by the data lifetime (docs/releases.md). */
  wiped?: true;
}

/** The tables of `now` whose hash differs from `before` (every table when nothing was held). */
export function changedTables(
  before: readonly TableDigest[] | undefined,
  now: readonly TableDigest[],
): string[] {
  const held = new Map((before ?? []).map((t) => [t.name, t.sha256]));
  return now.filter((t) => held.get(t.name) !== t.sha256).map((t) => t.name);
}

/** Notices kept for listeners to check against; older ones are dropped as new ones come. */
const NEWS_KEPT_DAYS = 30;

/**
 * The notice, and its row in dbupdate_news (which a listener checks it against: any login can
 * NOTIFY, only this service can write the table), both in the caller's load transaction.
 */
export async function notifyDataChanged(db: Queryable, news: DataChanged): Promise<void> {
  await db.query(
    `WITH old AS (DELETE FROM dbupdate_news WHERE committed_at < now() - make_interval(days => $4::int))
     INSERT INTO dbupdate_news (manifest_id, tables, committed_at) VALUES ($1::text, $2::text[], $3::timestamptz)
     ON CONFLICT (manifest_id) DO UPDATE SET tables = EXCLUDED.tables, committed_at = EXCLUDED.committed_at`,
    [news.manifestId, news.tables, news.committedAt, NEWS_KEPT_DAYS],
  );
  await db.query('SELECT pg_notify($1::text, $2::text)', [DATA_CHANGED_CHANNEL, JSON.stringify(news)]);
}
