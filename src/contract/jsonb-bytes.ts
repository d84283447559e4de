/**
 * The canonical JSON (contract §3: RFC 8785) of a jsonb value written straight from its COPY
 * text, for the common case: one flat object whose keys are plain ASCII and whose values are
 * strings without escapes, integers of at most 15 digits, booleans or null. PostgreSQL prints
 * such an object as `{"badge": 12, "shift": "late", "locale": "en"}` (keys by length, then
 * bytes); its canonical form drops the spaces and orders the keys by UTF-16 code units, which
 * for ASCII is byte order. Anything else (a backslash anywhere, a nested value, a fraction or
 * exponent, a key with other bytes) returns -1 and is left to the general path.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const SPACE = 0x20;
const OPEN = 0x7b;
const CLOSE = 0x7d;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;
/** Most keys handled here; a larger object takes the general path. */
const MAX_KEYS = 32;
/** Digits of an integer whose ECMAScript text is itself (below 2^53, no exponent). */
const MAX_DIGITS = 15;
const LITERALS = [Buffer.from('true'), Buffer.from('false'), Buffer.from('null')];

/** Per key: its text's start and end (inside the quotes), then its value's start and end. */
const spans = new Int32Array(MAX_KEYS * 4);
const order: number[] = [];

/**
 * Writes the canonical form of the jsonb text `buf[a, b)` to `out` at `pos` (it is never
 * longer than the text) and returns the position after it; -1 if this path does not know it.
 */
export function writeFlatJsonb(buf: Buffer, a: number, b: number, out: Buffer, pos: number): number {
  const n = scanObject(buf, a, b);
  if (n < 0) return -1;
  order.length = n;
  for (let k = 0; k < n; k++) order[k] = k;
  // Keys are few: an insertion sort by their bytes.
  for (let k = 1; k < n; k++) {
    const key = order[k]!;
    let m = k - 1;
    while (m >= 0 && keyCompare(buf, order[m]!, key) > 0) {
      order[m + 1] = order[m]!;
      m--;
    }
    order[m + 1] = key;
  }
  out[pos++] = OPEN;
  for (let k = 0; k < n; k++) {
    const s = order[k]! * 4;
    if (k > 0) out[pos++] = COMMA;
    pos += buf.copy(out, pos, spans[s]! - 1, spans[s + 1]! + 1);
    out[pos++] = COLON;
    pos += buf.copy(out, pos, spans[s + 2]!, spans[s + 3]!);
  }
  out[pos++] = CLOSE;
  return pos;
}

function keyCompare(buf: Buffer, x: number, y: number): number {
  return buf.compare(buf, spans[y * 4]!, spans[y * 4 + 1]!, spans[x * 4]!, spans[x * 4 + 1]!);
}

/** The object's keys and values into `spans`; their count, or -1 if the text is not of the simple form. */
function scanObject(buf: Buffer, a: number, b: number): number {
  if (buf[a] !== OPEN || buf[b - 1] !== CLOSE) return -1;
  if (b - a === 2) return 0;
  let i = a + 1;
  for (let n = 0; n < MAX_KEYS; n++) {
    if (buf[i] !== QUOTE) return -1;
    const keyEnd = plainString(buf, i + 1, b, true);
    if (keyEnd < 0 || buf[keyEnd + 1] !== COLON || buf[keyEnd + 2] !== SPACE) return -1;
    const value = keyEnd + 3;
    const valueEnd = scanValue(buf, value, b);
    if (valueEnd < 0) return -1;
    const s = n * 4;
    spans[s] = i + 1;
    spans[s + 1] = keyEnd;
    spans[s + 2] = value;
    spans[s + 3] = valueEnd;
    if (valueEnd === b - 1) return n + 1;
    if (buf[valueEnd] !== COMMA || buf[valueEnd + 1] !== SPACE) return -1;
    i = valueEnd + 2;
  }
  return -1;
}

/** The end of a scalar starting at `i`: a plain string, a short integer, or a literal; else -1. */
function scanValue(buf: Buffer, i: number, b: number): number {
  const c = buf[i];
  if (c === QUOTE) {
    const end = plainString(buf, i + 1, b, false);
    return end < 0 ? -1 : end + 1;
  }
  if (c === MINUS || (c !== undefined && c >= ZERO && c <= NINE)) {
    const first = c === MINUS ? i + 1 : i;
    let j = first;
    while (j < b && buf[j]! >= ZERO && buf[j]! <= NINE) j++;
    const digits = j - first;
    // `-0` and leading zeros have other canonical texts; PostgreSQL prints neither, but safe.
    if (digits === 0 || digits > MAX_DIGITS || (buf[first] === ZERO && (digits > 1 || c === MINUS)))
      return -1;
    return j;
  }
  for (const literal of LITERALS)
    if (i + literal.length <= b && buf.compare(literal, 0, literal.length, i, i + literal.length) === 0)
      return i + literal.length;
  return -1;
}

/**
 * The closing quote of a string starting at `i` (after its opening quote), or -1 if it holds a
 * backslash or control byte (escapes, in COPY or in JSON), or, for a key, any byte beyond ASCII.
 */
function plainString(buf: Buffer, i: number, b: number, ascii: boolean): number {
  for (let j = i; j < b; j++) {
    const byte = buf[j]!;
    if (byte === QUOTE) return j;
    if (byte === BACKSLASH || byte < SPACE || (ascii && byte >= 0x80)) return -1;
  }
  return -1;
}
