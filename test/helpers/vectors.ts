/** The golden vectors of test/vectors, loaded into a real database. */
import { readFileSync } from 'node:fs';
import { TABLES } from '../../src/contract/tables.ts';
import type { Queryable } from '../../src/platform/db.ts';

export interface ScopeVector {
  rows: Record<string, Record<string, string | null>[]>;
  device: { mac: string; id: string };
  expected: {
    filters: { companyId: string; locationId: string; deviceId: string };
    tables: { name: string; rowCount: number; sha256: string; lines: string[] }[];
    globalSha256: string;
  };
  refusals: { mac: string; why: string }[];
}

export const scopeV1: ScopeVector = JSON.parse(
  readFileSync(new URL('../vectors/scope-v1.json', import.meta.url), 'utf8'),
);

/** Inserts rows given as PostgreSQL input text, parents first. */
export async function insertRows(db: Queryable, rows: ScopeVector['rows']): Promise<void> {
  for (const def of TABLES) {
    for (const row of rows[def.name] ?? []) {
      const cols = Object.keys(row);
      const params = cols.map((_, i) => `$${i + 1}`).join(', ');
      await db.query(
        `INSERT INTO "${def.name}" (${cols.map((c) => `"${c}"`).join(', ')}) VALUES (${params})`,
        cols.map((c) => row[c]),
      );
    }
  }
}
