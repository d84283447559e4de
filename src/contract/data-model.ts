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

/** The version this release's migrations bring both databases to. */
export const DATA_MODEL: DataModel = Object.freeze({ version: SCHEMA_VERSION, tables: TABLES });

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
