import { fileURLToPath } from 'node:url';
import { TABLES, type Column, type TableDef, type TableName } from './tables.ts';
import { SCHEMA_VERSION } from './wire.ts';

/**
 * The shared data model's migrations (`v<N>_name.sql`, N = 1..SCHEMA_VERSION), which
 * both services take into their own numbered sequences (src/platform/migrate.ts).
 */
export const DATA_MODEL_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

/** One version of the data model: the tables and columns an edge at that version holds. */
export interface DataModel {
  readonly version: number;
  readonly tables: readonly TableDef[];
}

/**
 * The data model's history, oldest first: what an edge at each version holds. A release that
 * changes the model appends its version here (`withColumn(DATA_MODELS.at(-1), …)`) beside its
 * `v<N>_….sql` and raises SCHEMA_VERSION; Central serves the newest and the one before it
 * (src/central/sync/versions.ts), so a fleet upgrades Central first and its edges in waves.
 */
export const DATA_MODELS: readonly DataModel[] = Object.freeze([
  Object.freeze({ version: 1, tables: TABLES }),
]);

/** The version this release's migrations bring both databases to: the newest of the history. */
export const DATA_MODEL: DataModel = DATA_MODELS.at(-1)!;

if (DATA_MODEL.version !== SCHEMA_VERSION)
  throw new Error(`DATA_MODELS ends at v${DATA_MODEL.version}, SCHEMA_VERSION is ${SCHEMA_VERSION}`);

/**
 * The next version with `column` added to `table` (a nullable column, as a rolling
 * upgrade wants): how a release describes its model beside its `v<N>_…sql`, and how the
 * tests define a version that is not shipped.
 */
export function withColumn(model: DataModel, table: TableName, column: Column): DataModel {
  return Object.freeze({
    version: model.version + 1,
    tables: Object.freeze(
      model.tables.map((def) =>
        def.name === table
          ? Object.freeze({ ...def, columns: Object.freeze([...def.columns, column]) })
          : def,
      ),
    ),
  });
}

/**
 * Throws unless `older` is a projection of `newer`: the same tables in the same order,
 * each older column present in the newer table with the same type. Central serves an
 * older edge by selecting the older columns from its newer tables, so anything else
 * (a rename, a type change) needs its own projection first.
 */
export function requireProjection(newer: DataModel, older: DataModel): void {
  const problem = (text: string) =>
    new Error(`data model v${older.version} is not a projection of v${newer.version}: ${text}`);
  if (newer.tables.map((t) => t.name).join() !== older.tables.map((t) => t.name).join())
    throw problem('the tables differ');
  for (const [i, def] of older.tables.entries()) {
    const columns = new Map(newer.tables[i]!.columns.map((c) => [c.name, c.type]));
    for (const col of def.columns)
      if (columns.get(col.name) !== col.type)
        throw problem(`${def.name}.${col.name} is not in v${newer.version} as ${col.type}`);
  }
}
