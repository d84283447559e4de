/** This software's version, read once from package.json (it travels with the code). */
import { readFileSync } from 'node:fs';

export const SOFTWARE_VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
