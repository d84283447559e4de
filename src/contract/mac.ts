/**
 * MAC addresses: accepted in the common spellings (either case; `:`, `-` or `.`
 * separated, or bare hex), always stored and compared as lowercase colon form.
 */
const SEPARATED =
  /^([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i;
const DOTTED = /^([0-9a-f]{4})\.([0-9a-f]{4})\.([0-9a-f]{4})$/i;
const BARE = /^[0-9a-f]{12}$/i;

/** The spellings a MAC is accepted in, for messages that refuse one. */
export const MAC_FORMS =
  'six hex pairs, e.g. 48:b0:2d:e9:c3:b7, 48-B0-2D-E9-C3-B7, 48b02de9c3b7 or 48b0.2de9.c3b7';

/** The normalized `aa:bb:cc:dd:ee:ff` form, or null when the text is not a MAC. */
export function normalizeMac(text: string): string | null {
  let hex: string | null = null;
  const separated = SEPARATED.exec(text);
  if (separated) hex = [1, 3, 4, 5, 6, 7].map((i) => separated[i]).join('');
  const dotted = hex === null ? DOTTED.exec(text) : null;
  if (dotted) hex = dotted.slice(1).join('');
  if (hex === null && BARE.test(text)) hex = text;
  if (hex === null) return null;
  return hex.toLowerCase().match(/../g)!.join(':');
}
