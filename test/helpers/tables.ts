/** A table of this release's data model by name, for tests that build one hasher or cutter. */
import { DATA_MODEL } from '../../src/contract/data-model.ts';
import type { TableDef } from '../../src/contract/tables.ts';

export function tableDef(name: string): TableDef {
  const def = DATA_MODEL.tables.find((t) => t.name === name);
  if (!def) throw new Error(`unknown table ${name}`);
  return def;
}
