/**
 * Canonical rows and hashes (contract §3), computed from COPY text lines.
 *
 * Both services read their tables with `COPY (SELECT <columns> ... ORDER BY <pk>) TO STDOUT`
 * under COPY_SESSION_SETTINGS_SQL and feed the output here, so Central's manifest and
 * Edge's verification run the same code on the same text: no `pg` type parsers in
 * between to lose microseconds, bigint precision, numeric scale or JSON null.
 */
import { createHash, type Hash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { COPY_NULL, unescapeCopyField } from './copy-text.ts';
import { ByteLineWriter, canonicalColumns, FieldCountError } from './byte-lines.ts';
import type { Column, TableDef, TableName } from './tables.ts';

export class CanonicalError extends Error {}

export interface TableDigest {
  name: TableName;
  rowCount: number;
  sha256: string;
}

/** Whether two digests of a table agree on count and hash (a missing one never does). */
export function sameDigest(a: TableDigest, b: TableDigest | undefined): boolean {
  return b !== undefined && a.rowCount === b.rowCount && a.sha256 === b.sha256;
}

/** `2025-03-01 06:15:30.5+00` (TimeZone UTC, DateStyle ISO) → `2025-03-01T06:15:30.500000Z`. */
export function canonicalTimestamp(text: string): string {
  if (text === 'infinity' || text === '-infinity') return text;
  let s = text;
  let bc = false;
  if (s.endsWith(' BC')) {
    bc = true;
    s = s.slice(0, -3);
  }
  if (!s.endsWith('+00')) throw new CanonicalError(`timestamp not in UTC: ${text}`);
  s = s.slice(0, -3);
  const space = s.indexOf(' ');
  const dot = s.indexOf('.', space);
  if (space < 10) throw new CanonicalError(`unexpected timestamp form: ${text}`);
  let date = s.slice(0, space);
  const time = dot < 0 ? s.slice(space + 1) : s.slice(space + 1, dot);
  const frac = dot < 0 ? '000000' : s.slice(dot + 1).padEnd(6, '0');
  const dash = date.indexOf('-', 4);
  const year = Number(date.slice(0, dash));
  // Out-of-range years take ECMAScript's expanded form (as Date#toISOString does).
  if (bc || year > 9999) {
    const astronomical = bc ? 1 - year : year;
    const sign = astronomical < 0 ? '-' : '+';
    date = sign + String(Math.abs(astronomical)).padStart(6, '0') + date.slice(dash);
  }
  return `${date}T${time}.${frac}Z`;
}

function canonicalValue(col: Column, field: string): string {
  if (field === COPY_NULL) return 'null';
  switch (col.type) {
    case 'uuid':
      return `"${field}"`;
    case 'macaddr':
      return `"${field}"`;
    case 'integer':
      return field;
    case 'boolean':
      if (field === 't') return 'true';
      if (field === 'f') return 'false';
      throw new CanonicalError(`unexpected boolean ${field} in ${col.name}`);
    case 'bigint':
    case 'numeric':
      return `"${field}"`;
    case 'timestamptz':
      return `"${canonicalTimestamp(field)}"`;
    case 'text':
      return JSON.stringify(unescapeCopyField(field));
    case 'jsonb': {
      let parsed: unknown;
      try {
        parsed = JSON.parse(unescapeCopyField(field));
      } catch {
        throw new CanonicalError(`invalid jsonb in ${col.name}`);
      }
      try {
        return canonicalize(parsed) as string;
      } catch (err) {
        throw new CanonicalError(`jsonb in ${col.name} has no canonical form: ${(err as Error).message}`);
      }
    }
  }
}

/** Turns COPY text lines of one table into canonical JSON lines. */
export class RowCanonicalizer {
  readonly #columns: readonly Column[];
  /** Indexes of columns in canonical (sorted key) order, with their `"key":` prefixes. */
  readonly #order: readonly { index: number; prefix: string }[];

  constructor(def: TableDef) {
    this.#columns = def.columns;
    this.#order = canonicalColumns(def);
  }

  line(copyLine: string): string {
    const fields = copyLine.split('\t');
    if (fields.length !== this.#columns.length) {
      throw new CanonicalError(`expected ${this.#columns.length} fields, got ${fields.length}`);
    }
    let out = '';
    for (const { index, prefix } of this.#order) {
      out += prefix + canonicalValue(this.#columns[index]!, fields[index]!);
    }
    return out + '}';
  }
}

const NEWLINE = 0x0a;

/**
 * Consumes the raw COPY output of one table (chunks need not align with lines) and
 * yields its row count and SHA-256. `onLine` sees every canonical line (tests, debugging).
 */
export class TableHasher {
  readonly #def: TableDef;
  readonly #rows: RowCanonicalizer;
  readonly #hash: Hash = createHash('sha256');
  readonly #onLine: ((line: string) => void) | undefined;
  /** The start of a row whose end is in a later chunk. */
  #pending: Buffer | undefined;
  #count = 0;
  /** The byte path, unless someone asks to see the lines as strings. */
  readonly #bytes: ByteLineWriter | undefined;

  constructor(def: TableDef, onLine?: (line: string) => void) {
    this.#def = def;
    this.#rows = new RowCanonicalizer(def);
    this.#onLine = onLine;
    this.#bytes = onLine ? undefined : new ByteLineWriter(def, this.#hash, canonicalValue);
  }

  /**
   * Lines are cut from the bytes (a newline byte never occurs inside a UTF-8 sequence)
   * and written from them (ByteLineWriter), or, for `onLine`, decoded one by one. No
   * chunk-sized string is made, which the young generation would otherwise promote,
   * chunk after chunk, to the old one.
   */
  write(chunk: Buffer | string): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let start = 0;
    let nl = buf.indexOf(NEWLINE);
    try {
      if (this.#pending && nl >= 0) {
        const line = Buffer.concat([this.#pending, buf.subarray(0, nl)]);
        this.#add(line, 0, line.length);
        this.#pending = undefined;
        start = nl + 1;
        nl = buf.indexOf(NEWLINE, start);
      }
      while (nl >= 0) {
        this.#add(buf, start, nl);
        start = nl + 1;
        nl = buf.indexOf(NEWLINE, start);
      }
    } catch (err) {
      if (err instanceof FieldCountError) throw new CanonicalError(err.message);
      throw err;
    }
    if (start < buf.length) {
      // A copy, so the chunk itself can be freed.
      const rest = Buffer.from(buf.subarray(start));
      this.#pending = this.#pending ? Buffer.concat([this.#pending, rest]) : rest;
    }
  }

  digest(): TableDigest {
    if (this.#pending) throw new CanonicalError(`${this.#def.name}: COPY data ends mid-row`);
    this.#bytes?.flush();
    return { name: this.#def.name, rowCount: this.#count, sha256: this.#hash.digest('hex') };
  }

  #add(buf: Buffer, start: number, end: number): void {
    try {
      if (this.#bytes) {
        this.#bytes.line(buf, start, end);
        this.#count++;
      } else {
        this.#addLine(buf.toString('utf8', start, end));
      }
    } catch (err) {
      if (!(err instanceof CanonicalError || err instanceof FieldCountError)) throw err;
      // The table and the row's key, so an operator can find and mend the row.
      throw new CanonicalError(`${this.#def.name} row ${rowKey(this.#def, buf, start, end)}: ${err.message}`);
    }
  }

  #addLine(copyLine: string): void {
    const line = this.#rows.line(copyLine);
    this.#onLine?.(line);
    this.#hash.update(line + '\n');
    this.#count++;
  }
}

/** The key fields of a COPY text line (they lead the row), as `a` or `(a, b)`. */
function rowKey(def: TableDef, buf: Buffer, start: number, end: number): string {
  const fields = buf.toString('utf8', start, Math.min(end, start + 200)).split('\t');
  const key = fields.slice(0, def.primaryKey.length);
  return key.length === 1 ? key[0]! : `(${key.join(', ')})`;
}

/** The digests of these tables empty: what a wiped edge holds (Central's wipe, the edge's data lifetime). */
export function emptyDigests(tables: readonly TableDef[]): TableDigest[] {
  return tables.map((def) => new TableHasher(def).digest());
}

/** SHA-256 of the RFC 8785 form of `[{name,rowCount,sha256}]` in table order. */
export function globalSha256(tables: readonly TableDigest[]): string {
  const summary = tables.map(({ name, rowCount, sha256 }) => ({ name, rowCount, sha256 }));
  return createHash('sha256')
    .update(canonicalize(summary) as string)
    .digest('hex');
}
