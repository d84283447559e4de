/**
 * ULIDs with randomness drawn 4 KiB at a time. ulid's own generator makes one
 * crypto.getRandomValues call per character, 16 per id: 3 % of Central's CPU in the fleet
 * bench, where every answer gets a manifest id. A byte over 256 maps each of ulid's 32
 * characters from exactly 8 byte values, so the ids stay uniform.
 */
import { randomFillSync } from 'node:crypto';
import { ulid } from 'ulid';

const bytes = new Uint8Array(4096);
let next = bytes.length;

function prng(): number {
  if (next === bytes.length) {
    randomFillSync(bytes);
    next = 0;
  }
  return bytes[next++]! / 256;
}

export function newUlid(): string {
  return ulid(undefined, prng);
}
