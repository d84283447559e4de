/**
 * PostgreSQL COPY text format, the field level: the wire carries rows in this
 * format so that Edge can hand them to `COPY ... FROM STDIN` untouched.
 */
export const COPY_NULL = '\\N';

const SIMPLE: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** Decodes one COPY text field (not `\N`, which the caller maps to NULL). */
export function unescapeCopyField(field: string): string {
  if (!field.includes('\\')) return field;
  let out = '';
  for (let i = 0; i < field.length; i++) {
    const ch = field[i]!;
    if (ch !== '\\') {
      out += ch;
      continue;
    }
    const next = field[++i];
    if (next === undefined) break;
    const simple = SIMPLE[next];
    if (simple !== undefined) {
      out += simple;
    } else if (next >= '0' && next <= '7') {
      let digits = next;
      while (digits.length < 3 && field[i + 1]! >= '0' && field[i + 1]! <= '7') digits += field[++i];
      out += String.fromCharCode(parseInt(digits, 8));
    } else if (next === 'x' && /^[0-9a-fA-F]/.test(field[i + 1] ?? '')) {
      let digits = field[++i]!;
      if (/^[0-9a-fA-F]/.test(field[i + 1] ?? '')) digits += field[++i];
      out += String.fromCharCode(parseInt(digits, 16));
    } else {
      out += next;
    }
  }
  return out;
}

/** Rows in a run of COPY text: one per newline (a newline inside a field is escaped as \n). */
export function countRows(chunk: Uint8Array): number {
  let count = 0;
  let at = chunk.indexOf(0x0a);
  while (at >= 0) {
    count++;
    at = chunk.indexOf(0x0a, at + 1);
  }
  return count;
}

/** Bytes in a table's COPY text held as chunks. */
export function chunkBytes(chunks: readonly Uint8Array[]): number {
  let bytes = 0;
  for (const c of chunks) bytes += c.byteLength;
  return bytes;
}
