/** COPY text written by hand, for the tests of its reading (the product only reads it, and PostgreSQL writes it). */
import { COPY_NULL } from '../../src/contract/copy-text.ts';

/** Encodes a value as a COPY text field; null becomes `\N`. */
export function escapeCopyField(value: string | null): string {
  if (value === null) return COPY_NULL;
  return value.replace(/[\\\b\f\n\r\t\v]/g, (ch) => {
    switch (ch) {
      case '\\':
        return '\\\\';
      case '\b':
        return '\\b';
      case '\f':
        return '\\f';
      case '\n':
        return '\\n';
      case '\r':
        return '\\r';
      case '\t':
        return '\\t';
      default:
        return '\\v';
    }
  });
}
