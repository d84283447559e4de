/**
 * The scope rule is written once (src/central/sync/scope/rule.ts): the database's inverse of it
 * (`dbupdate_scopes_of`) and the columns its triggers pass must be what that file makes, so the
 * rule cannot change in one direction only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inverseSql, SCOPE_RULE, triggerColumns } from '../src/central/sync/scope/rule.ts';
import { DATA_MODEL } from '../src/contract/data-model.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';

/** SQL text without its layout: runs of whitespace as one space, none inside parentheses. */
const normal = (sql: string) => sql.replace(/\s+/g, ' ').replace(/\( /g, '(').replace(/ \)/g, ')').trim();

describe('the scope rule, once', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('central');
  });
  after(async () => {
    await db?.[Symbol.asyncDispose]();
  });

  it('covers every table of the data model', () => {
    assert.deepEqual(Object.keys(SCOPE_RULE).sort(), DATA_MODEL.tables.map((t) => t.name).sort());
  });

  it('is what the database inverts: dbupdate_scopes_of is the body rule.ts makes', async () => {
    const { rows } = await db.pool.query<{ body: string }>(
      "SELECT prosrc AS body FROM pg_proc WHERE proname = 'dbupdate_scopes_of'",
    );
    assert.equal(
      normal(rows[0]!.body),
      normal(inverseSql()),
      'the scope rule changed without a migration installing its inverse (rule.ts inverseSql)',
    );
  });

  it("passes each table's columns to its triggers as rule.ts says", async () => {
    // tgargs holds each argument followed by a NUL byte (shown as \\000 when escaped).
    const { rows } = await db.pool.query<{ tbl: string; raw: string; n: number }>(
      `SELECT c.relname AS tbl, encode(t.tgargs, 'escape') AS raw, t.tgnargs AS n
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE t.tgname LIKE '%\\_zscope\\_ins'`,
    );
    const installed = Object.fromEntries(rows.map((r) => [r.tbl, r.raw.split('\\000').slice(0, r.n)]));
    assert.deepEqual(installed, triggerColumns());
  });
});
