/** The contract module's pure parts: MAC spellings, COPY text, timestamps, canonical rows. */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describe, it } from 'node:test';
import {
  CanonicalError,
  canonicalTimestamp,
  RowCanonicalizer,
  TableHasher,
  globalSha256,
} from '../src/contract/canonical.ts';
import { unescapeCopyField } from '../src/contract/copy-text.ts';
import { escapeCopyField } from './helpers/copy-text.ts';
import { tableDef } from './helpers/tables.ts';
import { normalizeMac } from '../src/contract/mac.ts';
import type { ColumnType, TableDef, TableName } from '../src/contract/tables.ts';

describe('MAC addresses', () => {
  it('accepts the common spellings and normalizes them', () => {
    for (const text of [
      '48:b0:2d:e9:c3:b7',
      '48:B0:2D:E9:C3:B7',
      '48-b0-2d-e9-c3-b7',
      '48b02de9c3b7',
      '48b0.2de9.c3b7',
    ]) {
      assert.equal(normalizeMac(text), '48:b0:2d:e9:c3:b7', text);
    }
  });
  it('rejects everything else', () => {
    for (const text of [
      '',
      'not-a-mac',
      '48:b0:2d:e9:c3',
      '48:b0-2d:e9:c3:b7',
      '48:b0:2d:e9:c3:b7:00',
      ' 48b02de9c3b7',
      'gg:b0:2d:e9:c3:b7',
      '48b02de9c3b7\n',
    ]) {
      assert.equal(normalizeMac(text), null, JSON.stringify(text));
    }
  });
});

describe('COPY text fields', () => {
  it('round-trips every escaped character, and keeps a literal \\N apart from NULL', () => {
    const nasty = 'a\\b\tc\nd\re\bf\fg\vh \\N \u2028 🚀';
    assert.equal(unescapeCopyField(escapeCopyField(nasty)), nasty);
    assert.equal(escapeCopyField(null), '\\N');
    assert.equal(escapeCopyField('\\N'), '\\\\N');
  });
  it('decodes octal and hex escapes', () => {
    assert.equal(unescapeCopyField('\\101\\x42\\q'), 'ABq');
  });
});

describe('canonical timestamps', () => {
  const cases: [string, string][] = [
    ['2025-03-01 06:15:30.123456+00', '2025-03-01T06:15:30.123456Z'],
    ['2025-06-15 19:30:00.5+00', '2025-06-15T19:30:00.500000Z'],
    ['2025-01-01 00:00:00+00', '2025-01-01T00:00:00.000000Z'],
    ['infinity', 'infinity'],
    ['-infinity', '-infinity'],
    ['10000-01-01 00:00:00+00', '+010000-01-01T00:00:00.000000Z'],
    ['0044-03-15 12:00:00+00 BC', '-000043-03-15T12:00:00.000000Z'],
  ];
  for (const [input, expected] of cases) {
    it(`${input} → ${expected}`, () => assert.equal(canonicalTimestamp(input), expected));
  }
  it('refuses a timestamp that is not in UTC', () => {
    assert.throws(() => canonicalTimestamp('2025-01-01 00:00:00+02'), /not in UTC/);
  });
});

describe('canonical rows', () => {
  it('sorts keys, maps types, and canonicalizes jsonb', () => {
    const users = new RowCanonicalizer(tableDef('users'));
    const line = users.line(
      [
        '3d6f5b0e-0000-4000-8000-000000000001',
        '0a6f5b0e-0000-4000-8000-000000000001',
        'a@b',
        'Ana\\tM',
        '\\N',
        '9007199254740993',
        't',
        '{"b": 1, "a": [1.0, 1e2, null]}',
        '2025-01-01 00:00:00+00',
        '2025-01-01 00:00:00.25+00',
      ].join('\t'),
    );
    assert.equal(
      line,
      '{"company_id":"0a6f5b0e-0000-4000-8000-000000000001","created_at":"2025-01-01T00:00:00.000000Z",' +
        '"display_name":"Ana\\tM","email":"a@b","employee_number":"9007199254740993",' +
        '"id":"3d6f5b0e-0000-4000-8000-000000000001","is_active":true,"phone":null,' +
        '"settings":{"a":[1,100,null],"b":1},"updated_at":"2025-01-01T00:00:00.250000Z"}',
    );
  });
  it('refuses rows with the wrong number of fields, and data cut mid-row', () => {
    const hasher = new TableHasher(tableDef('companies'));
    assert.throws(() => hasher.write('only\tthree\tfields\n'), /expected 4 fields/);
    const cut = new TableHasher(tableDef('location_groups'));
    cut.write('a\tb\nc');
    assert.throws(() => cut.digest(), /ends mid-row/);
  });
  it('hashes an empty table as the empty string, whatever the chunking', () => {
    const empty = new TableHasher(tableDef('areas')).digest();
    assert.equal(empty.sha256, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    const whole = new TableHasher(tableDef('location_groups'));
    whole.write(Buffer.from('x\ty\nz\tw\n'));
    const split = new TableHasher(tableDef('location_groups'));
    for (const ch of Buffer.from('x\ty\nz\tw\n')) split.write(Buffer.from([ch]));
    assert.deepEqual(split.digest(), whole.digest());
    assert.equal(globalSha256([]), '4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945');
  });
  it('hashes the same whatever the chunk boundaries, even inside a multi-byte character', () => {
    const field = fc.string({ unit: 'binary', maxLength: 12 }).map((t) => t.replace(/[\t\n\\\r]/g, 'é'));
    const rows = fc.array(fc.tuple(field, field), { maxLength: 30 });
    fc.assert(
      fc.property(rows, fc.array(fc.nat(), { maxLength: 20 }), (table, cuts) => {
        const bytes = Buffer.from(table.map(([a, b]) => `${a}\t${b}\n`).join(''));
        const whole = new TableHasher(tableDef('location_groups'));
        whole.write(bytes);
        const split = new TableHasher(tableDef('location_groups'));
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
        let from = 0;
        for (const at of [...points, bytes.length]) {
          split.write(bytes.subarray(from, at));
          from = at;
        }
        assert.deepEqual(split.digest(), whole.digest());
      }),
      { numRuns: 300 },
    );
  });
});

describe('the byte path of the hasher', () => {
  const types: ColumnType[] = [
    'uuid',
    'integer',
    'bigint',
    'numeric',
    'macaddr',
    'boolean',
    'text',
    'timestamptz',
    'jsonb',
  ];
  // Column names out of canonical order, so the byte path must reorder them too.
  const table: TableDef = {
    name: 'users' as TableName,
    columns: types.map((type, i) => ({ name: `${'zyxwvutsr'[i]}_${type}`, type })),
    primaryKey: ['z_uuid'],
  };
  const orNull = (value: fc.Arbitrary<string>) =>
    fc.oneof({ weight: 5, arbitrary: value }, fc.constant('\\N'));
  const pad = (n: number, width: number) => String(n).padStart(width, '0');
  const timestamp = fc.oneof(
    fc
      .record({
        year: fc.oneof(fc.integer({ min: 1, max: 9999 }), fc.integer({ min: 10000, max: 294276 })),
        month: fc.integer({ min: 1, max: 12 }),
        day: fc.integer({ min: 1, max: 28 }),
        seconds: fc.integer({ min: 0, max: 86399 }),
        fraction: fc.oneof(fc.constant(''), fc.stringMatching(/^[0-9]{1,6}$/)),
        bc: fc.boolean(),
      })
      .map(
        ({ year, month, day, seconds, fraction, bc }) =>
          `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)} ${pad(Math.floor(seconds / 3600), 2)}:` +
          `${pad(Math.floor(seconds / 60) % 60, 2)}:${pad(seconds % 60, 2)}${fraction && '.' + fraction}+00${bc ? ' BC' : ''}`,
      ),
    fc.constantFrom('infinity', '-infinity'),
  );
  const text = fc.oneof(
    fc.string({ unit: fc.constantFrom(...'abc XYZ 0123-_.@éß€😀') }),
    fc.string({ unit: 'binary' }),
    fc.string({ unit: fc.constantFrom('a', '"', '\\', '\t', '\n', '\u0001', '\u007f', '\u2028') }),
  );
  // jsonb as PostgreSQL prints it: `{"k": v, …}`, keys by length then bytes (the byte path's
  // form), with scalars it may copy and ones it must leave to the general path.
  const pgKey = fc.oneof(
    { weight: 4, arbitrary: fc.string({ unit: fc.constantFrom('a', 'b', 'Z', '_', '1'), maxLength: 4 }) },
    { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom('a', 'é', '"', '\\', ' ') }) },
  );
  const pgScalar = fc.oneof(
    { weight: 3, arbitrary: fc.integer().map(String) },
    fc.string({ unit: fc.constantFrom('x', 'é', '😀', ' ', '\u007f') }).map((t) => JSON.stringify(t)),
    fc.bigInt({ min: -(10n ** 18n), max: 10n ** 18n }).map(String),
    fc.double({ noDefaultInfinity: true, noNaN: true }).map((d) => String(Object.is(d, -0) ? 0 : d)),
    fc.constantFrom('true', 'false', 'null', '{}', '[1, 2]', '{"x": 1}'),
    text.map((t) => JSON.stringify(t)),
  );
  const pgJsonb = fc.dictionary(pgKey, pgScalar, { maxKeys: 40 }).map((object) => {
    const keys = Object.keys(object).sort((x, y) => {
      const [bx, by] = [Buffer.from(x), Buffer.from(y)];
      return bx.length - by.length || Buffer.compare(bx, by);
    });
    return `{${keys.map((k) => `${JSON.stringify(k)}: ${object[k]}`).join(', ')}}`;
  });
  const row = fc.tuple(
    orNull(fc.uuid()),
    orNull(fc.integer().map(String)),
    orNull(fc.bigInt().map(String)),
    orNull(fc.oneof(fc.double({ noDefaultInfinity: true, noNaN: true }).map(String), fc.constant('NaN'))),
    orNull(
      fc
        .array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 })
        .map((b) => b.map((x) => x.toString(16).padStart(2, '0')).join(':')),
    ),
    orNull(fc.constantFrom('t', 'f')),
    orNull(text.map(escapeCopyField)),
    orNull(timestamp),
    orNull(fc.oneof(fc.json(), pgJsonb).map(escapeCopyField)),
  );
  const general = (def: TableDef, bytes: Buffer) => {
    const hasher = new TableHasher(def, () => {}); // asking for the lines selects the general path
    hasher.write(bytes);
    return hasher.digest();
  };

  it('gives the bytes of the general path for every type, whatever the chunk boundaries', () => {
    fc.assert(
      fc.property(fc.array(row, { maxLength: 60 }), fc.array(fc.nat(), { maxLength: 20 }), (rows, cuts) => {
        const bytes = Buffer.from(rows.map((r) => r.join('\t') + '\n').join(''));
        const split = new TableHasher(table);
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
        let from = 0;
        for (const at of [...points, bytes.length]) {
          split.write(bytes.subarray(from, at));
          from = at;
        }
        assert.deepEqual(split.digest(), general(table, bytes));
      }),
      { numRuns: 500 },
    );
    // Many rows at once cross the writer's flush threshold; a long value outgrows its buffer.
    const long = 'ü'.repeat(70_000);
    const many = Buffer.from(
      Array.from(
        { length: 3000 },
        (_, i) =>
          `${i}\t${i}\t-${i}\t${i}.5\t00:11:22:33:44:55\tt\t${i === 7 ? long : 'name ' + i}\t` +
          `2025-03-01 06:15:30.5+00\t{"b": [1, 2.50], "a": "${i === 9 ? long : 'x'}"}\n`,
      ).join(''),
    );
    const numbered: TableDef = {
      ...table,
      columns: table.columns.map((c) => ({ ...c, type: c.type === 'uuid' ? 'integer' : c.type })),
    };
    const whole = new TableHasher(numbered);
    whole.write(many);
    assert.deepEqual(whole.digest(), general(numbered, many));
  });

  it('refuses what the general path refuses, with the same message', () => {
    const good = ['1', '2', '3', '4.5', '00:00:00:00:00:00', 't', 'x', '2025-01-01 00:00:00+00', '{}'];
    const with_ = (i: number, value: string) => good.map((v, j) => (j === i ? value : v)).join('\t') + '\n';
    for (const bad of [
      'a\tb\n',
      good.join('\t') + '\textra\n',
      with_(5, 'yes'),
      with_(7, '2025-01-01 00:00:00+02'),
      with_(8, '{not json'),
    ]) {
      const bytes = Buffer.from(bad);
      let expected = '';
      assert.throws(
        () => general(table, bytes),
        (err: Error) => ((expected = err.message), err instanceof CanonicalError),
      );
      const fast = new TableHasher(table);
      assert.throws(
        () => fast.write(bytes),
        (err: Error) => err instanceof CanonicalError && err.message === expected,
        bad,
      );
    }
  });
});
