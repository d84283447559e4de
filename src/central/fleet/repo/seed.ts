/**
 * Set-based generators for realistic central data: each table is one
 * INSERT ... SELECT over generate_series, so a million users take seconds.
 * Every choice is arithmetic on the seed and the row number: the same seed gives
 * the same data, ids included.
 */
import type { Queryable } from '../../../platform/db.ts';

export interface SeedShape {
  seed: number;
  companies: number;
  locationsPerCompany: number;
  groupsPerCompany: number;
  groupsPerLocation: number;
  usersPerCompany: number;
  groupsPerUser: number;
  areasPerLocation: number;
  devicesPerLocation: number;
}

export interface NamePools {
  companies: string[];
  locations: string[];
  addresses: string[];
  timezones: string[];
  groups: string[];
  firstNames: string[];
  lastNames: string[];
  areas: string[];
}

/** A deterministic uuid for the n-th thing of a kind. */
const id = (kind: string, ...parts: string[]): string =>
  `md5($1::text || ':${kind}:' || ${parts.join(" || ':' || ")})::uuid`;
/** A deterministic instant in 2024–2025 with microseconds, varied by `n`. */
const stamp = (n: string): string =>
  `(timestamptz '2024-01-01 00:00:00+00' + ((${n})::bigint * 7919 % 63072000000000) * interval '1 microsecond')`;
const pick = (pool: string, n: string): string => `(${pool})[1 + ((${n}) % cardinality(${pool}))]`;

/**
 * Runs a bulk insert with the table's foreign keys dropped and re-added afterwards,
 * as pg_restore does: re-adding validates every row in one set-based pass instead of
 * one trigger call per row. The definitions are read from the catalog, so they come
 * back exactly as the migrations made them. The caller owns the transaction.
 */
export async function withForeignKeysRebuilt(
  db: Queryable,
  table: string,
  work: () => Promise<void>,
): Promise<void> {
  const { rows } = await db.query<{ name: string; def: string }>(
    `SELECT conname AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint
      WHERE conrelid = to_regclass($1::text) AND contype = 'f' ORDER BY conname`,
    [table],
  );
  for (const fk of rows) await db.query(`ALTER TABLE "${table}" DROP CONSTRAINT "${fk.name}"`);
  await work();
  for (const fk of rows) await db.query(`ALTER TABLE "${table}" ADD CONSTRAINT "${fk.name}" ${fk.def}`);
}

export async function dataTablesEmpty(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ any: boolean }>(
    'SELECT EXISTS (SELECT 1 FROM companies) OR EXISTS (SELECT 1 FROM devices) AS any',
  );
  return !rows[0]!.any;
}

export async function truncateDataTables(db: Queryable): Promise<void> {
  await db.query(
    'TRUNCATE companies, locations, groups, location_groups, users, group_users, areas, devices CASCADE',
  );
}

export async function seedCompanies(db: Queryable, s: SeedShape, p: NamePools): Promise<void> {
  await db.query(
    `INSERT INTO companies (id, name, created_at, updated_at)
     SELECT ${id('c', 'c')}, ${pick('$3::text[]', 'c')} || CASE WHEN c >= cardinality($3::text[]) THEN ' ' || c ELSE '' END,
            ${stamp('c + 1')}, ${stamp('c + 2')}
       FROM generate_series(0, $2::int - 1) c`,
    [String(s.seed), s.companies, p.companies],
  );
}

export async function seedLocations(db: Queryable, s: SeedShape, p: NamePools): Promise<void> {
  await db.query(
    `INSERT INTO locations (id, company_id, name, address, timezone, created_at, updated_at)
     SELECT ${id('l', 'c', 'l')}, ${id('c', 'c')},
            ${pick('$4::text[]', 'c * 7 + l')} || ' ' || (l + 1),
            CASE WHEN l % 5 = 4 THEN NULL ELSE ${pick('$5::text[]', 'c * 13 + l')} END,
            ${pick('$6::text[]', 'c * 3 + l')},
            ${stamp('c * 1000 + l')}, ${stamp('c * 1000 + l + 5')}
       FROM generate_series(0, $2::int - 1) c, generate_series(0, $3::int - 1) l`,
    [String(s.seed), s.companies, s.locationsPerCompany, p.locations, p.addresses, p.timezones],
  );
}

export async function seedGroups(db: Queryable, s: SeedShape, p: NamePools): Promise<void> {
  await db.query(
    `INSERT INTO groups (id, company_id, name, description, created_at, updated_at)
     SELECT ${id('g', 'c', 'g')}, ${id('c', 'c')}, ${pick('$4::text[]', 'g')} || ' ' || (g + 1),
            CASE WHEN g % 3 = 0 THEN NULL ELSE 'Team ' || (g + 1) || ' of company ' || (c + 1) END,
            ${stamp('c * 100 + g')}, ${stamp('c * 100 + g + 9')}
       FROM generate_series(0, $2::int - 1) c, generate_series(0, $3::int - 1) g`,
    [String(s.seed), s.companies, s.groupsPerCompany, p.groups],
  );
  // Each location gets groupsPerLocation groups of its company, overlapping with its neighbours'.
  await db.query(
    `INSERT INTO location_groups (location_id, group_id)
     SELECT DISTINCT ${id('l', 'c', 'l')}, ${id('g', 'c', '((l * 3 + k) % $4::int)')}
       FROM generate_series(0, $2::int - 1) c, generate_series(0, $3::int - 1) l,
            generate_series(0, least($5::int, $4::int) - 1) k`,
    [String(s.seed), s.companies, s.locationsPerCompany, s.groupsPerCompany, s.groupsPerLocation],
  );
}

export async function seedUsers(db: Queryable, s: SeedShape, p: NamePools): Promise<void> {
  await db.query(
    `INSERT INTO users (id, company_id, email, display_name, phone, employee_number, is_active, settings,
                        created_at, updated_at)
     SELECT ${id('u', 'c', 'u')}, ${id('c', 'c')},
            lower(fn) || '.' || lower(ln) || '.' || u || '@company' || (c + 1) || '.example',
            fn || ' ' || ln,
            CASE WHEN u % 3 = 0 THEN NULL ELSE '+1 555 ' || lpad((u % 10000)::text, 4, '0') END,
            CASE WHEN u % 5 = 0 THEN NULL ELSE 1000000 + c::bigint * 10000000 + u END,
            u % 17 <> 0,
            jsonb_build_object('locale', (ARRAY['en', 'de', 'fr', 'ja'])[1 + u % 4],
                               'badge', u % 1000, 'shift', (ARRAY['early', 'late', 'night'])[1 + u % 3]),
            ${stamp('u * 31 + c')}, ${stamp('u * 37 + c + 1')}
       FROM generate_series(0, $2::int - 1) c, generate_series(0, $3::int - 1) u,
            LATERAL (SELECT ${pick('$4::text[]', 'u * 7 + c')} AS fn, ${pick('$5::text[]', 'u * 11 + c * 3')} AS ln) n`,
    [String(s.seed), s.companies, s.usersPerCompany, p.firstNames, p.lastNames],
  );
  // Every 50th user is in no group; the others are in groupsPerUser distinct groups of their company.
  await db.query(
    `INSERT INTO group_users (group_id, user_id)
     SELECT ${id('g', 'c', '((u * 31 + k) % $4::int)')}, ${id('u', 'c', 'u')}
       FROM generate_series(0, $2::int - 1) c, generate_series(0, $3::int - 1) u,
            generate_series(0, least($5::int, $4::int) - 1) k
      WHERE u % 50 <> 49`,
    [String(s.seed), s.companies, s.usersPerCompany, s.groupsPerCompany, s.groupsPerUser],
  );
}

export async function seedAreasAndDevices(db: Queryable, s: SeedShape, p: NamePools): Promise<void> {
  await db.query(
    `INSERT INTO areas (id, location_id, name, floor, size_sqm, created_at, updated_at)
     SELECT ${id('a', 'c', 'l', 'a')}, ${id('l', 'c', 'l')}, ${pick('$5::text[]', 'a')} || ' ' || (a + 1),
            CASE WHEN a % 4 = 3 THEN NULL ELSE a % 6 - 1 END,
            CASE WHEN a % 5 = 4 THEN NULL ELSE round((10 + (a::bigint * 7919 + l) % 5000) / 3.0, 2) END,
            ${stamp('a + l * 10')}, ${stamp('a + l * 10 + 3')}
       FROM generate_series(0, $2::int - 1) c, generate_series(0, $3::int - 1) l,
            generate_series(0, $4::int - 1) a`,
    [String(s.seed), s.companies, s.locationsPerCompany, s.areasPerLocation, p.areas],
  );
  await db.query(
    `INSERT INTO devices (id, location_id, mac, name, is_enabled, created_at, updated_at)
     SELECT ${id('d', 'c', 'l', 'd')}, ${id('l', 'c', 'l')},
            ('02' || lpad(to_hex(($1::text)::int % 256), 2, '0') ||
             lpad(to_hex((c * $3::int + l) * $4::int + d), 8, '0'))::macaddr,
            'jetson-' || (c + 1) || '-' || (l + 1) || '-' || (d + 1), true,
            ${stamp('d + l * 7')}, ${stamp('d + l * 7 + 1')}
       FROM generate_series(0, $2::int - 1) c, generate_series(0, $3::int - 1) l,
            generate_series(0, $4::int - 1) d`,
    [String(s.seed), s.companies, s.locationsPerCompany, s.devicesPerLocation],
  );
}

export async function tableCounts(db: Queryable): Promise<Record<string, number>> {
  const { rows } = await db.query<{ name: string; n: string }>(
    `SELECT 'companies' AS name, count(*) AS n FROM companies UNION ALL
     SELECT 'locations', count(*) FROM locations UNION ALL SELECT 'groups', count(*) FROM groups UNION ALL
     SELECT 'location_groups', count(*) FROM location_groups UNION ALL SELECT 'users', count(*) FROM users UNION ALL
     SELECT 'group_users', count(*) FROM group_users UNION ALL SELECT 'areas', count(*) FROM areas UNION ALL
     SELECT 'devices', count(*) FROM devices`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, Number(r.n)]));
}

export async function sampleDevices(db: Queryable, limit: number): Promise<{ mac: string; name: string }[]> {
  const { rows } = await db.query<{ mac: string; name: string }>(
    'SELECT mac::text AS mac, name FROM devices ORDER BY mac LIMIT $1::int',
    [limit],
  );
  return rows;
}
