/** `dbupdate edge verify`: local counts and hashes against the last applied manifest. */
import { digestTables } from '../../contract/digest-pg.ts';
import { DATA_MODEL, type DataModel } from '../../contract/data-model.ts';
import { COPY_SESSION_SETTINGS_SQL } from '../../contract/tables.ts';
import { withTransaction, type Pool } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { lastAppliedTables } from '../repo/ledger.ts';
import { localSelectSql } from '../repo/tables.ts';
import { compareTables, type TableComparison } from '../sync/checks.ts';

export interface VerifyResult {
  manifestId: string;
  tables: TableComparison[];
  drifted: string[];
}

export async function verifyLocal(pool: Pool, model: DataModel = DATA_MODEL): Promise<VerifyResult> {
  return withTransaction(pool, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', async (tx) => {
    const applied = await lastAppliedTables(tx);
    if (!applied) throw new AppError('NOTHING_APPLIED', 'no manifest has been applied on this edge yet');
    await tx.query(COPY_SESSION_SETTINGS_SQL);
    const actual = await digestTables(tx, localSelectSql, undefined, model.tables);
    const tables = compareTables(applied.tables, actual);
    return {
      manifestId: applied.manifestId,
      tables,
      drifted: tables.filter((t) => !t.ok).map((t) => t.name),
    };
  });
}
