/**
 * Canonical lines (contract §3) written from the COPY bytes into one reused buffer, which
 * is hashed a buffer at a time: no string and no object per row for the values whose COPY
 * text already is, or maps by a fixed rule to, their canonical JSON. That covers uuid,
 * integer, bigint, numeric, macaddr, boolean, UTC timestamps of years 1–9999, text with no
 * escape, quote or control character, and flat jsonb objects of plain keys and scalars
 * (jsonb-bytes.ts). Anything else (other jsonb, other text, other timestamps) goes through
 * the general path's `canonicalValue` for that one field.
 * RowCanonicalizer gives the same bytes for the same rows; test/contract.test.ts holds
 * the two equal over random rows of every type.
 */
import type { Hash } from 'node:crypto';
import { writeFlatJsonb } from './jsonb-bytes.ts';
import type { Column, TableDef } from './tables.ts';

export class FieldCountError extends Error {}

/** The general path for one field: its canonical JSON text. */
export type CanonicalValue = (col: Column, field: string) => string;

type Kind = 'raw' | 'quoted' | 'boolean' | 'text' | 'timestamptz' | 'jsonb';

const KIND: Record<Column['type'], Kind> = {
  integer: 'raw',
  uuid: 'quoted',
  macaddr: 'quoted',
  bigint: 'quoted',
  numeric: 'quoted',
  boolean: 'boolean',
  text: 'text',
  timestamptz: 'timestamptz',
  jsonb: 'jsonb',
};

const TAB = 0x09;
const BACKSLASH = 0x5c;
const QUOTE = 0x22;
const FLUSH_AT = 1 << 15;
/** Most a fast-path value grows by: quotes, `false` for `f`, a timestamp's `T`, zeros and `Z`. */
const SLACK = 12;
const NULL = Buffer.from('null');
const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const END = Buffer.from('}\n');
const ZEROS = Buffer.from('000000');

interface OrderedColumn {
  col: Column;
  index: number;
  /** `{"name":` for the first key, `,"name":` for the others. */
  prefix: Buffer;
  kind: Kind;
}

/**
 * The columns in canonical order (sorted by key, contract §3), each with its index in
 * the COPY line and the text before its value: `{"key":` for the first, `,"key":` after.
 */
export function canonicalColumns(def: TableDef): { col: Column; index: number; prefix: string }[] {
  return def.columns
    .map((col, index) => ({ col, index }))
    .sort((a, b) => (a.col.name < b.col.name ? -1 : a.col.name > b.col.name ? 1 : 0))
    .map(({ col, index }, i) => ({
      col,
      index,
      prefix: `${i === 0 ? '{' : ','}${JSON.stringify(col.name)}:`,
    }));
}

export class ByteLineWriter {
  readonly #hash: Hash;
  readonly #general: CanonicalValue;
  readonly #columns: readonly OrderedColumn[];
  readonly #starts: Int32Array;
  readonly #ends: Int32Array;
  #out = Buffer.allocUnsafe(FLUSH_AT * 2);
  #pos = 0;

  constructor(def: TableDef, hash: Hash, general: CanonicalValue) {
    this.#hash = hash;
    this.#general = general;
    this.#columns = canonicalColumns(def).map(({ col, index, prefix }) => ({
      col,
      index,
      prefix: Buffer.from(prefix),
      kind: KIND[col.type],
    }));
    this.#starts = new Int32Array(def.columns.length);
    this.#ends = new Int32Array(def.columns.length);
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
    if (field !== count - 1) throw new FieldCountError(`expected ${count} fields, got ${field + 1}`);
    this.#starts[field] = from;
    this.#ends[field] = end;

    for (const col of this.#columns) {
      const a = this.#starts[col.index]!;
      const b = this.#ends[col.index]!;
      this.#reserve(col.prefix.length + (b - a) + SLACK);
      this.#put(col.prefix);
      if (b - a === 2 && buf[a] === BACKSLASH && buf[a + 1] === 0x4e /* N */) this.#put(NULL);
      else if (!this.#value(col, buf, a, b))
        this.#putString(this.#general(col.col, buf.toString('utf8', a, b)));
    }
    this.#reserve(END.length);
    this.#put(END);
    if (this.#pos >= FLUSH_AT) this.flush();
  }

  /** Hashes what is buffered; call before taking the digest. */
  flush(): void {
    if (this.#pos > 0) this.#hash.update(this.#out.subarray(0, this.#pos));
    this.#pos = 0;
  }

  /** Writes the value of `buf[a, b)` if the byte path knows its form; false leaves it to the general path. */
  #value(col: OrderedColumn, buf: Buffer, a: number, b: number): boolean {
    switch (col.kind) {
      case 'raw':
        this.#copy(buf, a, b);
        return true;
      case 'quoted':
        this.#quoted(buf, a, b);
        return true;
      case 'boolean':
        if (b - a !== 1 || (buf[a] !== 0x74 /* t */ && buf[a] !== 0x66) /* f */) return false;
        this.#put(buf[a] === 0x74 ? TRUE : FALSE);
        return true;
      case 'text':
        for (let i = a; i < b; i++) {
          const byte = buf[i]!;
          if (byte < 0x20 || byte === QUOTE || byte === BACKSLASH) return false;
        }
        this.#quoted(buf, a, b);
        return true;
      case 'timestamptz':
        return this.#timestamp(buf, a, b);
      case 'jsonb': {
        const end = writeFlatJsonb(buf, a, b, this.#out, this.#pos);
        if (end < 0) return false;
        this.#pos = end;
        return true;
      }
    }
  }

  /** `2025-03-01 06:15:30.5+00` → `"2025-03-01T06:15:30.500000Z"`; other forms: false. */
  #timestamp(buf: Buffer, a: number, b: number): boolean {
    const length = b - a;
    if (length < 22 || length > 29 || buf[a + 4] !== 0x2d || buf[a + 10] !== 0x20) return false;
    if (buf[b - 3] !== 0x2b /* + */ || buf[b - 2] !== 0x30 || buf[b - 1] !== 0x30) return false;
    const digits = length === 22 ? 0 : length - 23; // after `.`
    if (digits > 0 && (buf[a + 19] !== 0x2e /* . */ || digits > 6)) return false;
    if (length === 23) return false;
    this.#out[this.#pos++] = QUOTE;
    this.#copy(buf, a, a + 10);
    this.#out[this.#pos++] = 0x54; // T
    this.#copy(buf, a + 11, a + 19);
    this.#out[this.#pos++] = 0x2e;
    this.#copy(buf, a + 20, a + 20 + digits);
    this.#pos += ZEROS.copy(this.#out, this.#pos, 0, 6 - digits);
    this.#out[this.#pos++] = 0x5a; // Z
    this.#out[this.#pos++] = QUOTE;
    return true;
  }

  #quoted(buf: Buffer, a: number, b: number): void {
    this.#out[this.#pos++] = QUOTE;
    this.#copy(buf, a, b);
    this.#out[this.#pos++] = QUOTE;
  }

  #copy(buf: Buffer, a: number, b: number): void {
    if (b - a > 64) {
      this.#pos += buf.copy(this.#out, this.#pos, a, b);
      return;
    }
    // Most values are short; a loop beats Buffer#copy's argument checks for them.
    const out = this.#out;
    let pos = this.#pos;
    for (let i = a; i < b; i++) out[pos++] = buf[i]!;
    this.#pos = pos;
  }

  #put(bytes: Buffer): void {
    this.#copy(bytes, 0, bytes.length);
  }

  #putString(text: string): void {
    this.#reserve(text.length * 3); // a UTF-16 unit is at most 3 UTF-8 bytes
    this.#pos += this.#out.write(text, this.#pos);
  }

  #reserve(bytes: number): void {
    if (this.#pos + bytes <= this.#out.length) return;
    this.flush();
    if (bytes > this.#out.length) this.#out = Buffer.allocUnsafe(bytes);
  }
}
