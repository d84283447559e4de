/**
 * The scope rule of contract §2, written once: for each table, the one way its rows reach a
 * location's devices. Both directions are made from it:
 *
 * | direction | what it answers                               | where it runs                                   |
 * |-----------|-----------------------------------------------|-------------------------------------------------|
 * | forward   | which rows of a table a device sees           | `scopeConditions` → the selects of repo/scope.ts |
 * | inverse   | which locations a changed row reaches         | `inverseSql` = body of `dbupdate_scopes_of`      |
 * | triggers  | which columns a changed row is reached through | `triggerColumns` = the arguments of the triggers |
 *
 * The database holds the inverse and the triggers as migration 0008 made them; a test
 * (test/scope-rule.test.ts) compares what is installed with what this file makes, so the
 * rule cannot change in one direction only: a change here needs a migration that installs the
 * new `inverseSql()` and triggers, and the test says so until it exists.
 */
import type { TableName } from '../../../contract/tables.ts';

/** How a table's rows reach a location. */
export type Reach =
  /** The company of the location (companies). */
  | { via: 'company' }
  /** A location by the table's own id (locations) or its `location_id` column. */
  | { via: 'location'; column: 'id' | 'location_id' }
  /** A group linked to the location, by the table's own id (groups) or its `group_id` column. */
  | { via: 'group'; column: 'id' | 'group_id' }
  /** A user of a group linked to the location (users). */
  | { via: 'user' }
  /** The device's own row: versioned by its xmin, not by the location. */
  | { via: 'device' };

export const SCOPE_RULE: Readonly<Record<TableName, Reach>> = Object.freeze({
  companies: { via: 'company' },
  locations: { via: 'location', column: 'id' },
  groups: { via: 'group', column: 'id' },
  location_groups: { via: 'location', column: 'location_id' },
  users: { via: 'user' },
  group_users: { via: 'group', column: 'group_id' },
  areas: { via: 'location', column: 'location_id' },
  devices: { via: 'device' },
});

/** Each table's condition for a device's scope, over SQL expressions for its company, location and device. */
export function scopeConditions(
  company: string,
  location: string,
  device: string,
): Record<TableName, string> {
  const groups = `SELECT lg.group_id FROM location_groups lg WHERE lg.location_id = ${location}`;
  const forward = (reach: Reach): string => {
    switch (reach.via) {
      case 'company':
        return `id = ${company}`;
      case 'location':
        return `${reach.column} = ${location}`;
      case 'group':
        return `${reach.column} IN (${groups})`;
      case 'user':
        return `id IN (SELECT gu.user_id FROM group_users gu WHERE gu.group_id IN (${groups}))`;
      case 'device':
        return `id = ${device}`;
    }
  };
  const entries = Object.entries(SCOPE_RULE).map(([table, reach]) => [table, forward(reach)]);
  return Object.fromEntries(entries) as Record<TableName, string>;
}

/**
 * The triggers' arguments per table: the id column and the column it is reached through
 * (`''` when it has none to use); the device's own table has no trigger.
 */
export function triggerColumns(): Partial<Record<TableName, [id: string, ref: string]>> {
  const out: Partial<Record<TableName, [string, string]>> = {};
  for (const [table, reach] of Object.entries(SCOPE_RULE) as [TableName, Reach][]) {
    if (reach.via === 'device') continue;
    const own = !('column' in reach) || reach.column === 'id';
    out[table] = own ? ['id', ''] : ['', reach.column];
  }
  return out;
}

/** The body of `dbupdate_scopes_of(tbl, ids, refs)`: the locations a set of changed rows reaches. */
export function inverseSql(): string {
  const tables = (want: (r: Reach) => boolean) =>
    (Object.entries(SCOPE_RULE) as [TableName, Reach][]).filter(([, r]) => want(r)).map(([t]) => t);
  const is = (names: string[]) =>
    names.length === 1 ? `tbl = '${names[0]}'` : `tbl IN (${names.map((n) => `'${n}'`).join(', ')})`;
  const arms = [
    `SELECT l.id FROM locations l WHERE ${is(tables((r) => r.via === 'company'))} AND l.company_id = ANY(ids)`,
    `SELECT unnest(ids) WHERE ${is(tables((r) => r.via === 'location' && r.column === 'id'))}`,
    `SELECT unnest(refs) WHERE ${is(tables((r) => r.via === 'location' && r.column !== 'id'))}`,
    `SELECT lg.location_id FROM location_groups lg WHERE ${is(tables((r) => r.via === 'group' && r.column === 'id'))} AND lg.group_id = ANY(ids)`,
    `SELECT lg.location_id FROM location_groups lg WHERE ${is(tables((r) => r.via === 'group' && r.column !== 'id'))} AND lg.group_id = ANY(refs)`,
    `SELECT lg.location_id FROM group_users gu JOIN location_groups lg ON lg.group_id = gu.group_id WHERE ${is(tables((r) => r.via === 'user'))} AND gu.user_id = ANY(ids)`,
  ];
  return `SELECT ARRAY(${arms.join(' UNION ')});`;
}
