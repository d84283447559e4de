/**
 * A deterministic text description of a database's schema, from the catalogs (no
 * pg_dump binary needed). Committed per service; a test fails when it drifts.
 */
import type { Queryable } from '../../src/platform/db.ts';

export async function dumpSchema(db: Queryable): Promise<string> {
  const sections: string[] = [];
  const columns = await db.query<{ line: string }>(
    `SELECT format('%s.%s %s%s%s', table_name, column_name, format_type(a.atttypid, a.atttypmod),
                   CASE WHEN is_nullable = 'NO' THEN ' NOT NULL' ELSE '' END,
                   CASE WHEN column_default IS NOT NULL THEN ' DEFAULT ' || column_default ELSE '' END) AS line
       FROM information_schema.columns c
       JOIN pg_attribute a ON a.attrelid = format('%I.%I', c.table_schema, c.table_name)::regclass
                          AND a.attname = c.column_name
      WHERE table_schema = 'public'
      ORDER BY table_name, ordinal_position`,
  );
  sections.push('-- columns', ...columns.rows.map((r) => r.line));
  const constraints = await db.query<{ line: string }>(
    `SELECT format('%s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid)) AS line
       FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1`,
  );
  sections.push('-- constraints', ...constraints.rows.map((r) => r.line));
  const indexes = await db.query<{ line: string }>(
    `SELECT indexdef AS line FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname`,
  );
  sections.push('-- indexes', ...indexes.rows.map((r) => r.line));
  const triggers = await db.query<{ line: string }>(
    `SELECT pg_get_triggerdef(t.oid) AS line FROM pg_trigger t
       JOIN pg_class c ON c.oid = t.tgrelid
      WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal ORDER BY t.tgname`,
  );
  sections.push('-- triggers', ...triggers.rows.map((r) => r.line));
  const functions = await db.query<{ line: string }>(
    `SELECT pg_get_functiondef(p.oid) AS line FROM pg_proc p
      WHERE p.pronamespace = 'public'::regnamespace ORDER BY p.proname`,
  );
  sections.push('-- functions', ...functions.rows.map((r) => r.line.trim()));
  return sections.join('\n') + '\n';
}
