/**
 * Settings are read from the environment once, validated against a TypeBox schema
 * and frozen. A bad setting stops the process with one line naming it. A setting marked
 * `secret` may instead be read from a file named by `<NAME>_FILE` (Docker and Compose secrets,
 * systemd's LoadCredential), so that it never sits in an environment a process listing shows.
 */
import { readFileSync } from 'node:fs';
import { Value } from 'typebox/value';
import { Type, type TObject, type Static } from 'typebox';
import { AppError } from './errors.ts';

/** The placeholders of the `.env.example` files (`change-me-…`, `replace-with-…`). */
const PLACEHOLDER = /change-me|replace-with/i;

export function loadConfig<T extends TObject>(
  schema: T,
  env: Record<string, string | undefined> = process.env,
): Readonly<Static<T>> {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(schema.properties)) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value;
    const file = (schema.properties[key] as { secret?: boolean }).secret ? env[`${key}_FILE`] : undefined;
    if (file) raw[key] = readSecretFile(key, file, raw[key] !== undefined);
  }
  for (const [name, value] of Object.entries(raw)) {
    // The example files' placeholders validate as text; a service must not run on them.
    if (PLACEHOLDER.test(String(value)))
      throw new AppError(
        'CONFIG_INVALID',
        `setting ${name} still holds the example placeholder (${JSON.stringify(PLACEHOLDER.exec(String(value))?.[0])}); set a real value`,
        { details: { name } },
      );
  }
  const withDefaults = Value.Default(schema, raw) as Record<string, unknown>;
  const converted = Value.Convert(schema, withDefaults) as Record<string, unknown>;
  const first = Value.Errors(schema, converted)[0];
  if (first) {
    const path = (first as { instancePath?: string }).instancePath ?? '';
    const params = (first as { params?: { requiredProperties?: string[] } }).params;
    const name = path.replace(/^\//, '') || params?.requiredProperties?.[0] || 'configuration';
    const shown = raw[name] === undefined ? 'is missing' : 'is invalid';
    throw new AppError(
      'CONFIG_INVALID',
      `setting ${name} ${shown}: ${explain(schema, name, first.message)}`,
      {
        details: { name },
      },
    );
  }
  return Object.freeze(converted) as Readonly<Static<T>>;
}

/** `<name>_FILE`'s content, its final line break dropped (as `echo … > file` leaves one). */
function readSecretFile(name: string, file: string, alsoSet: boolean): string {
  if (alsoSet)
    throw new AppError('CONFIG_INVALID', `settings ${name} and ${name}_FILE are both set: keep one`, {
      details: { name },
    });
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new AppError('CONFIG_INVALID', `setting ${name}_FILE cannot be read: ${(err as Error).message}`, {
      details: { name: `${name}_FILE` },
    });
  }
}

/** A setting that may come from `<name>_FILE` instead (see loadConfig). */
export function secret<T extends object>(schema: T): T {
  return Object.assign(schema, { secret: true });
}

/**
 * The settings `schema` reads, one line each for a command's `--help`: required, or its default,
 * and whether it may come from a file (`NAME_FILE`).
 */
export function describeSettings(schema: TObject): string[] {
  const required = new Set(schema.required ?? []);
  const names = Object.keys(schema.properties);
  const width = Math.max(...names.map((n) => n.length));
  return names.map((name) => {
    const p = schema.properties[name] as { default?: unknown; secret?: boolean };
    const need =
      p.default !== undefined
        ? `default ${JSON.stringify(p.default)}`
        : required.has(name)
          ? 'required'
          : 'optional';
    return `  ${name.padEnd(width)}  ${need}${p.secret ? `; or ${name}_FILE` : ''}`;
  });
}

/** A choice of words says which words, rather than the validator's "must be equal to constant". */
function explain(schema: TObject, name: string, message: string): string {
  const property = schema.properties[name] as { anyOf?: { const?: unknown }[] } | undefined;
  const choices = property?.anyOf?.map((option) => option.const).filter((c) => typeof c === 'string');
  return choices && choices.length > 0 ? `must be one of ${choices.join(', ')}` : message;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const LogLevelSetting = Type.Union(
  LOG_LEVELS.map((level) => Type.Literal(level)),
  { default: 'info' },
);

/** `auto`: readable lines on a terminal, JSON lines otherwise. */
export const LogFormatSetting = Type.Union(
  (['auto', 'json', 'pretty'] as const).map((format) => Type.Literal(format)),
  { default: 'auto' },
);
