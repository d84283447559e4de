/**
 * The data model of contract §1 as data: both services derive their COPY column
 * lists, key order and canonical form from this one description.
 */
export type ColumnType =
  'uuid' | 'text' | 'boolean' | 'integer' | 'bigint' | 'numeric' | 'timestamptz' | 'macaddr' | 'jsonb';

export interface Column {
  readonly name: string;
  readonly type: ColumnType;
}

export interface TableDef {
  readonly name: TableName;
  readonly columns: readonly Column[];
  readonly primaryKey: readonly string[];
}

/** Parents first: the order of loading, hashing and the manifest. */
export const TABLE_NAMES = [
  'companies',
  'locations',
  'groups',
  'location_groups',
  'users',
  'group_users',
  'areas',
  'devices',
] as const;
export type TableName = (typeof TABLE_NAMES)[number];

const c = (name: string, type: ColumnType): Column => ({ name, type });
const id = c('id', 'uuid');
const stamps = [c('created_at', 'timestamptz'), c('updated_at', 'timestamptz')];

const defs: Record<TableName, Omit<TableDef, 'name'>> = {
  companies: { columns: [id, c('name', 'text'), ...stamps], primaryKey: ['id'] },
  locations: {
    columns: [
      id,
      c('company_id', 'uuid'),
      c('name', 'text'),
      c('address', 'text'),
      c('timezone', 'text'),
      ...stamps,
    ],
    primaryKey: ['id'],
  },
  groups: {
    columns: [id, c('company_id', 'uuid'), c('name', 'text'), c('description', 'text'), ...stamps],
    primaryKey: ['id'],
  },
  location_groups: {
    columns: [c('location_id', 'uuid'), c('group_id', 'uuid')],
    primaryKey: ['location_id', 'group_id'],
  },
  users: {
    columns: [
      id,
      c('company_id', 'uuid'),
      c('email', 'text'),
      c('display_name', 'text'),
      c('phone', 'text'),
      c('employee_number', 'bigint'),
      c('is_active', 'boolean'),
      c('settings', 'jsonb'),
      ...stamps,
    ],
    primaryKey: ['id'],
  },
  group_users: {
    columns: [c('group_id', 'uuid'), c('user_id', 'uuid')],
    primaryKey: ['group_id', 'user_id'],
  },
  areas: {
    columns: [
      id,
      c('location_id', 'uuid'),
      c('name', 'text'),
      c('floor', 'integer'),
      c('size_sqm', 'numeric'),
      ...stamps,
    ],
    primaryKey: ['id'],
  },
  devices: {
    columns: [
      id,
      c('location_id', 'uuid'),
      c('mac', 'macaddr'),
      c('name', 'text'),
      c('is_enabled', 'boolean'),
      ...stamps,
    ],
    primaryKey: ['id'],
  },
};

export const TABLES: readonly TableDef[] = Object.freeze(
  TABLE_NAMES.map((name) => Object.freeze({ name, ...defs[name] })),
);

/** Quoted column list, in the column order used on the wire and by COPY. */
export function columnList(def: TableDef): string {
  return def.columns.map((col) => `"${col.name}"`).join(', ');
}

export function orderBy(def: TableDef): string {
  return def.primaryKey.map((col) => `"${col}"`).join(', ');
}

/**
 * Session settings under which COPY text output is what the canonicalizer expects
 * (timestamps in UTC with ISO style). Both sides apply them inside their transaction.
 */
export const COPY_SESSION_SETTINGS = Object.freeze({ TimeZone: 'UTC', DateStyle: 'ISO, YMD' });
export const COPY_SESSION_SETTINGS_SQL = Object.entries(COPY_SESSION_SETTINGS)
  .map(([name, value]) => `SET LOCAL ${name} = '${value}'`)
  .join('; ');
