/** `npm run docs:errors`: rewrites docs/errors.md from the error registry (a test checks it). */
import { writeFile } from 'node:fs/promises';
import { ERROR_CODES } from '../src/platform/errors.ts';

const rows = Object.entries(ERROR_CODES).map(
  ([code, { status, description }]) => `| \`${code}\` | ${status} | ${description} |`,
);
const text = `# Error codes

Every error dbupdate reports carries one of these stable codes. Over HTTP the body is
\`{ "error": { "code": "...", "message": "..." } }\` with the status below; on the command line the
process prints \`dbupdate: CODE: message\` on stderr and exits non-zero (2 for \`USAGE\`). Messages may
change; codes do not. Codes marked Edge are also the \`error_code\` of failed rows in \`edge_sync_log\`.

| code | HTTP status | meaning |
|---|---|---|
${rows.join('\n')}
`;
await writeFile(new URL('../docs/errors.md', import.meta.url), text);
console.log(`docs/errors.md: ${rows.length} codes`);
