/**
 * Devices' own rows (the `devices` part of each scope) read for many devices in one
 * statement. A device whose location's shared tables are already hashed (its neighbours
 * synced at the same location version) needs only its own row to complete its digests; a
 * snapshot session per device cost six round trips and a transaction for a one-row COPY,
 * which made up most of PostgreSQL's work in a first-sync storm. Batched, the same rows
 * cost two round trips per batch.
 *
 * Consistency without a shared transaction: each row comes with its xmin, and is used only
 * if that equals the xmin in the scope version read with the request's audit row. A row
 * version's xmin never changes, so an equal xmin is the same row content.
 */
import { KeyedLines } from '../../../contract/pieces.ts';
import type { TableDef } from '../../../contract/tables.ts';
import { Batcher, type BatcherOptions } from '../../../platform/batcher.ts';
import type { Pool } from '../../../platform/db.ts';
import { copyOwnRows, setOwnRowIds } from '../repo/scope.ts';

export interface OwnRow {
  /** The row's COPY text line, with its newline. */
  line: Buffer;
  xmin: string;
}

/**
 * One batch in flight (its own connection), started at least 25 ms after the previous one:
 * a storm's first syncs gather many to a batch, and each waits 25 ms and one batch at most.
 * (At 10 ms apart a 100,000-device storm cost Central and PostgreSQL a few points of a core
 * more in round trips, and shed more: docs/scaling.md.)
 */
export const OWN_ROW_BATCHES: BatcherOptions = { maxItems: 256, concurrency: 1, minGapMs: 25 };

const TAB = 0x09;
const NL = 0x0a;

interface Wanted {
  id: string;
  def: TableDef;
}

export class OwnRowReader {
  readonly #pool: Pool;
  readonly #batcher: Batcher<Wanted, OwnRow | undefined>;

  /** `pool`: connections for these reads alone (their session settings are set by every batch). */
  constructor(pool: Pool, options: BatcherOptions = OWN_ROW_BATCHES) {
    this.#pool = pool;
    this.#batcher = new Batcher((items) => this.#read(items), options);
  }

  /** The device's own row as `def` (its data-model version) lists it; undefined when it is gone. */
  read(id: string, def: TableDef): Promise<OwnRow | undefined> {
    return this.#batcher.add({ id, def });
  }

  async #read(items: readonly Wanted[]): Promise<(OwnRow | undefined)[]> {
    // By data-model version (its def): the COPYs of two versions list different columns.
    const found = new Map<TableDef, Map<string, OwnRow>>();
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await setOwnRowIds(client, [...new Set(items.map((w) => w.id))]);
      for (const def of new Set(items.map((w) => w.def))) {
        const rows = new Map<string, OwnRow>();
        found.set(def, rows);
        const lines = new KeyedLines(def);
        for await (const chunk of copyOwnRows(client, def))
          lines.write(chunk as Buffer, (buf, start, end, keyEnd) =>
            rows.set(buf.toString('latin1', start, keyEnd), splitXmin(buf, start, end)),
          );
        if (lines.pending > 0) throw new Error('devices: a row without its newline ends the COPY');
      }
    } catch (err) {
      broken = err as Error;
      throw err;
    } finally {
      client.release(broken);
    }
    return items.map((w) => found.get(w.def)!.get(w.id));
  }
}

/** The line `buf[start, end)` without its last field (the xmin), in a buffer of its own, and that field. */
function splitXmin(buf: Buffer, start: number, end: number): OwnRow {
  const tab = buf.lastIndexOf(TAB, end - 1);
  const line = Buffer.allocUnsafeSlow(tab - start + 1);
  buf.copy(line, 0, start, tab);
  line[tab - start] = NL;
  return { line, xmin: buf.toString('latin1', tab + 1, end - 1) };
}
