/**
 * Canonical lines (CONTRACT §3) of tables whose every column is plain: uuid, integer,
 * bigint, numeric, macaddr or boolean. The COPY text of such a value never holds an
 * escape, and its JSON form is the text itself, the text in quotes, or a fixed word, so
 * lines are written byte by byte into one reused buffer and hashed a buffer at a time:
 * no string and no object per row. For group_users, two thirds of a large scope's rows,
 * that removes nearly all of the hashing's garbage. RowCanonicalizer gives the same
 * bytes for the same rows; test/contract.test.ts holds the two equal.
 */
import type { Hash } from 'node:crypto';
import type { ColumnType, TableDef } from './tables.ts';

export class PlainLineError extends Error {}

const PLAIN: ReadonlySet<ColumnType> = new Set([
  'uuid',
  'integer',
  'bigint',
  'numeric',
  'macaddr',
  'boolean',
]);

export function isPlainTable(def: TableDef): boolean {
  return def.columns.every((c) => PLAIN.has(c.type));
}

const TAB = 0x09;
const BACKSLASH = 0x5c;
const QUOTE = 0x22;
const FLUSH_AT = 1 << 15;
const NULL = Buffer.from('null');
const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const END = Buffer.from('}\n');

interface OrderedColumn {
  index: number;
  name: string;
  /** `{"name":` for the first key, `,"name":` for the others. */
  prefix: Buffer;
  kind: 'raw' | 'quoted' | 'boolean';
}

export class PlainLineWriter {
  readonly #hash: Hash;
  readonly #columns: readonly OrderedColumn[];
  readonly #starts: Int32Array;
  readonly #ends: Int32Array;
  /** Longest line apart from the values themselves: keys, quotes, `null`/`false`, `}\n`. */
  readonly #overhead: number;
  #out = Buffer.allocUnsafe(FLUSH_AT * 2);
  #pos = 0;

  constructor(def: TableDef, hash: Hash) {
    this.#hash = hash;
    this.#columns = def.columns
      .map((col, index) => ({ col, index }))
      .sort((a, b) => (a.col.name < b.col.name ? -1 : a.col.name > b.col.name ? 1 : 0))
      .map(({ col, index }, i) => ({
        index,
        name: col.name,
        prefix: Buffer.from(`${i === 0 ? '{' : ','}${JSON.stringify(col.name)}:`),
        kind: col.type === 'integer' ? 'raw' : col.type === 'boolean' ? 'boolean' : 'quoted',
      }));
    this.#starts = new Int32Array(def.columns.length);
    this.#ends = new Int32Array(def.columns.length);
    this.#overhead = this.#columns.reduce((n, c) => n + c.prefix.length + 5, END.length);
  }

  /** Appends the canonical line, newline included, of the COPY line `buf[start, end)`. */
  line(buf: Buffer, start: number, end: number): void {
    const count = this.#starts.length;
    let field = 0;
    let from = start;
    for (let i = start; i < end; i++) {
      if (buf[i] !== TAB) continue;
      if (field < count) {
        this.#starts[field] = from;
        this.#ends[field] = i;
      }
      field++;
      from = i + 1;
    }
    if (field !== count - 1) throw new PlainLineError(`expected ${count} fields, got ${field + 1}`);
    this.#starts[field] = from;
    this.#ends[field] = end;

    this.#reserve(this.#overhead + (end - start));
    for (const col of this.#columns) {
      this.#put(col.prefix);
      const a = this.#starts[col.index]!;
      const b = this.#ends[col.index]!;
      if (b - a === 2 && buf[a] === BACKSLASH && buf[a + 1] === 0x4e /* N */) {
        this.#put(NULL);
      } else if (col.kind === 'raw') {
        this.#pos += buf.copy(this.#out, this.#pos, a, b);
      } else if (col.kind === 'quoted') {
        this.#out[this.#pos++] = QUOTE;
        this.#pos += buf.copy(this.#out, this.#pos, a, b);
        this.#out[this.#pos++] = QUOTE;
      } else if (b - a === 1 && (buf[a] === 0x74 /* t */ || buf[a] === 0x66) /* f */) {
        this.#put(buf[a] === 0x74 ? TRUE : FALSE);
      } else {
        throw new PlainLineError(`unexpected boolean ${buf.toString('utf8', a, b)} in ${col.name}`);
      }
    }
    this.#put(END);
    if (this.#pos >= FLUSH_AT) this.flush();
  }

  /** Hashes what is buffered; call before taking the digest. */
  flush(): void {
    if (this.#pos > 0) this.#hash.update(this.#out.subarray(0, this.#pos));
    this.#pos = 0;
  }

  #reserve(bytes: number): void {
    if (this.#pos + bytes <= this.#out.length) return;
    this.flush();
    if (bytes > this.#out.length) this.#out = Buffer.allocUnsafe(bytes);
  }

  #put(bytes: Buffer): void {
    this.#pos += bytes.copy(this.#out, this.#pos);
  }
}
