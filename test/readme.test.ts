/** The README's tables say what the code does: every command, every setting, every status. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CentralConfigSchema } from '../src/central/config.ts';
import { COMMANDS } from '../src/cli/main.ts';
import { EdgeConfigSchema } from '../src/edge/config.ts';
import { ERROR_CODES } from '../src/platform/errors.ts';

const readme = readFileSync('README.md', 'utf8');

/** The first cells of the table that follows `heading`. */
function firstCells(heading: string): string[] {
  const section = readme.slice(readme.indexOf(heading));
  const table = section.slice(section.indexOf('\n|'));
  const rows = table.split('\n').slice(1);
  const end = rows.findIndex((r) => !r.startsWith('|'));
  return rows
    .slice(0, end)
    .filter((r) => !/^\|\s*-/.test(r))
    .map((r) => r.split('|')[1]!.trim());
}

describe('the README', () => {
  it('lists every command, and only real ones', () => {
    const listed = firstCells('## Command line').join('\n');
    for (const { command } of COMMANDS) assert.match(listed, new RegExp(`\`dbupdate ${command}\\b`), command);
    for (const cell of firstCells('## Command line').slice(1)) {
      const named = /`dbupdate ((?:central|edge) [a-z-]+(?: [a-z]+(?=[ `]))?|demo)/.exec(cell)?.[1];
      if (named)
        assert.ok(
          COMMANDS.some((c) => c.command === named),
          cell,
        );
    }
  });

  it('lists every setting of both services, and only real ones', () => {
    const listed = new Set(firstCells('## Configuration').flatMap((c) => c.replaceAll('`', '').split(', ')));
    const known = new Set([
      ...Object.keys(CentralConfigSchema.properties),
      ...Object.keys(EdgeConfigSchema.properties),
    ]);
    for (const key of known) assert.ok(listed.has(key), `${key} is not in the settings table`);
    for (const key of listed) assert.ok(known.has(key) || key === 'OTEL_*' || key === 'setting', key);
  });

  it("names every status Central's errors are answered with", () => {
    const sentence = /Errors are `\{ "error": \{ "code", "message" \} \}` with ([^;]+);/.exec(
      readme.replace(/\n/g, ' '),
    )?.[1];
    assert.ok(sentence, 'the sentence on error statuses is missing');
    const central = Object.values(ERROR_CODES).filter(
      (c) => !/^(Edge|Demo)/.test(c.description) && (c.status < 500 || c.status === 503),
    );
    for (const { status } of central) assert.match(sentence, new RegExp(`\\b${status}\\b`), String(status));
  });
});
