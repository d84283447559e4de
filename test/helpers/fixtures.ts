/**
 * Hand-built central data for scope tests, shaped so that a wrong join would leak:
 * groups shared by locations, users in several groups, users in no group, a second
 * company with look-alike rows.
 */
import type { Queryable } from '../../src/platform/db.ts';

let counter = 0;
export function uuid(prefix: number): string {
  counter++;
  return `${prefix.toString(16).padStart(8, '0')}-0000-4000-8000-${counter.toString(16).padStart(12, '0')}`;
}

const T = '2025-01-02 03:04:05.123456+00';

export class Fixture {
  readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  async company(name: string): Promise<string> {
    const id = uuid(1);
    await this.db.query('INSERT INTO companies VALUES ($1, $2, $3, $3)', [id, name, T]);
    return id;
  }
  async location(companyId: string, name: string): Promise<string> {
    const id = uuid(2);
    await this.db.query('INSERT INTO locations VALUES ($1, $2, $3, NULL, $4, $5, $5)', [
      id,
      companyId,
      name,
      'UTC',
      T,
    ]);
    return id;
  }
  async group(companyId: string, name: string, locationIds: string[]): Promise<string> {
    const id = uuid(3);
    await this.db.query('INSERT INTO groups VALUES ($1, $2, $3, NULL, $4, $4)', [id, companyId, name, T]);
    for (const l of locationIds) await this.db.query('INSERT INTO location_groups VALUES ($1, $2)', [l, id]);
    return id;
  }
  async user(companyId: string, email: string, groupIds: string[]): Promise<string> {
    const id = uuid(4);
    await this.db.query(
      `INSERT INTO users (id, company_id, email, display_name, is_active, created_at, updated_at)
       VALUES ($1, $2, $3, $3, true, $4, $4)`,
      [id, companyId, email, T],
    );
    for (const g of groupIds) await this.db.query('INSERT INTO group_users VALUES ($1, $2)', [g, id]);
    return id;
  }
  async area(locationId: string, name: string): Promise<string> {
    const id = uuid(5);
    await this.db.query(
      'INSERT INTO areas (id, location_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)',
      [id, locationId, name, T],
    );
    return id;
  }
  async device(locationId: string, mac: string, enabled = true): Promise<string> {
    const id = uuid(6);
    await this.db.query('INSERT INTO devices VALUES ($1, $2, $3, $4, $5, $6, $6)', [
      id,
      locationId,
      mac,
      `dev ${mac}`,
      enabled,
      T,
    ]);
    return id;
  }
}

/** The first column (or the two key columns) of every COPY text row of a table. */
export function keysOf(copyText: string, columns = 1): string[] {
  return copyText
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split('\t').slice(0, columns).join('|'));
}
