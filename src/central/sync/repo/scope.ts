/**
 * The scope rule of contract §2 as SQL. COPY takes no bind parameters, so the scope
 * (device, location, company) travels as transaction-local settings read with
 * current_setting(): nothing from a request is ever spliced into SQL text.
 */
import { to as copyTo } from 'pg-copy-streams';
import type { PoolClient } from '../../../platform/db.ts';
import {
  columnList,
  COPY_SESSION_SETTINGS,
  orderBy,
  TABLES,
  type TableDef,
} from '../../../contract/tables.ts';
import type { Queryable } from '../../../platform/db.ts';
import type { Device } from '../../model.ts';
import { scopeConditions } from '../scope/rule.ts';

const COMPANY = "current_setting('dbupdate.company_id')::uuid";
const LOCATION = "current_setting('dbupdate.location_id')::uuid";
const DEVICE = "current_setting('dbupdate.device_id')::uuid";

// The rule itself, and its inverse in the database, are made in one place: ../scope/rule.ts.
const SCOPE = scopeConditions(COMPANY, LOCATION, DEVICE);

const SET_SCOPE = `set_config('dbupdate.company_id', $1::text, true),
                   set_config('dbupdate.location_id', $2::text, true),
                   set_config('dbupdate.device_id', $3::text, true)`;

/**
 * Sets the device's scope for this transaction (the ids `scopeSelectSql` reads), and answers
 * the scope version the transaction sees, in one round trip (a first-sync
 * storm opens thousands of sessions, and waits on each one's round trips while it holds a slot).
 */
export async function setScopeAndReadVersion(client: PoolClient, device: Device): Promise<string> {
  const { rows } = await client.query<{ version: string }>(
    `SELECT ${SET_SCOPE}, ${scopeVersionSql('$2::uuid', '$3::uuid')} AS version`,
    [device.companyId, device.locationId, device.id],
  );
  return rows[0]!.version;
}

export function scopeSelectSql(def: TableDef): string {
  return `SELECT ${columnList(def)} FROM "${def.name}" WHERE ${SCOPE[def.name]} ORDER BY ${orderBy(def)}`;
}

/** COPY text of one table's scoped rows, in primary-key order. */
export function copyScopedTable(client: PoolClient, def: TableDef): NodeJS.ReadableStream {
  return client.query(copyTo(`COPY (${scopeSelectSql(def)}) TO STDOUT`));
}

/**
 * The version of a device's scope, as SQL over expressions for its location and device id:
 * its location's scope version (migration 0008, bumped with any change to a row in that
 * location's scope) and its own row's xmin (the `devices` part of its scope is that row
 * alone). Equal versions, equal scope content. One definition for every reader, so that
 * versions read with the audit row and in a snapshot session are keys of one cache.
 */
export function scopeVersionSql(location: string, device: string): string {
  return `coalesce((SELECT version FROM scope_versions WHERE location_id = ${location}), 0)::text
            || ':' || coalesce((SELECT xmin::text FROM devices WHERE id = ${device}), '-')`;
}

const LOCATION_IDS = "string_to_array(current_setting('dbupdate.location_ids'), ',')::uuid[]";

/**
 * Sets, for this transaction, the locations whose shared tables `copySharedScopes` reads
 * next, and answers each one's location version (the first part of a scope version), in
 * the order given.
 */
export async function setLocationsAndReadVersions(
  client: PoolClient,
  locationIds: readonly string[],
): Promise<string[]> {
  const { rows } = await client.query<{ version: string }>(
    `SELECT coalesce(v.version, 0)::text AS version
       FROM (SELECT set_config('dbupdate.location_ids', $1, true)) s,
            unnest(string_to_array($1, ',')::uuid[]) WITH ORDINALITY AS l(id, ord)
       LEFT JOIN scope_versions v ON v.location_id = l.id
      ORDER BY l.ord`,
    [locationIds.join(',')],
  );
  return rows.map((r) => r.version);
}

/**
 * COPY text of one shared table (any but `devices`) for every location set by
 * `setLocationsAndReadVersions`: each location's rows in key order, exactly as a session
 * scoped to one of its devices copies them, each line led by one more field, the
 * location's place in that list (from 1). One statement for many locations: a storm's
 * first device of each location otherwise opens a session of its own.
 */
export function copySharedScopes(client: PoolClient, def: TableDef): NodeJS.ReadableStream {
  if (def.name === 'devices') throw new Error('devices is not shared by a location');
  const scope = scopeConditions('(SELECT l.company_id FROM locations l WHERE l.id = t.loc)', 't.loc', 'NULL');
  const order = def.primaryKey.map((col) => `x."${col}"`).join(', ');
  return client.query(
    copyTo(
      `COPY (SELECT t.ord, x.* FROM unnest(${LOCATION_IDS}) WITH ORDINALITY AS t(loc, ord)
              CROSS JOIN LATERAL (SELECT ${columnList(def)} FROM "${def.name}" WHERE ${scope[def.name]}) x
              ORDER BY t.ord, ${order}) TO STDOUT`,
    ),
  );
}

/** The COPY settings as SQL conditions: true only in a session that has them all. */
const copySettingsHold = Object.entries(COPY_SESSION_SETTINGS)
  .map(([name, value]) => `current_setting('${name}') = '${value}'`)
  .join(' AND ');

const SET_OWN_ROW_IDS = `SELECT ${Object.entries(COPY_SESSION_SETTINGS)
  .map(([name, value]) => `set_config('${name}', '${value}', false)`)
  .join(', ')}, set_config('dbupdate.device_ids', $1, false)`;

/**
 * Sets, for this session (not a transaction: a batch reads in one statement), the COPY
 * settings and the devices whose own rows `copyOwnRows` reads next.
 */
export async function setOwnRowIds(client: PoolClient, ids: readonly string[]): Promise<void> {
  await client.query(SET_OWN_ROW_IDS, [ids.join(',')]);
}

/**
 * COPY text of the devices' own rows (the `devices` part of each one's scope), in key
 * order, each line ending in one more field: the row's xmin. Rows are read only while the
 * settings hold (a pooler that moved the statement to another connection reads none).
 */
export function copyOwnRows(client: PoolClient, def: TableDef): NodeJS.ReadableStream {
  const ids = "string_to_array(current_setting('dbupdate.device_ids'), ',')::uuid[]";
  return client.query(
    copyTo(
      `COPY (SELECT ${columnList(def)}, xmin FROM devices WHERE id = ANY(${ids}) AND ${copySettingsHold}
              ORDER BY ${orderBy(def)}) TO STDOUT`,
    ),
  );
}

/** Locations, and the on-disk size of the tables their devices share, for the table cache's size. */
export async function countFleet(db: Queryable): Promise<{ locations: number; sharedBytes: number }> {
  const shared = TABLES.filter((t) => t.name !== 'devices').map((t) => t.name);
  const { rows } = await db.query<{ locations: number; sharedBytes: number }>(
    `SELECT (SELECT count(*)::int FROM locations) AS "locations",
            (SELECT coalesce(sum(pg_table_size(to_regclass(quote_ident(n)))), 0)::float8
               FROM unnest($1::text[]) n) AS "sharedBytes"`,
    [shared],
  );
  return rows[0]!;
}
