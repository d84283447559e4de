/**
 * Settings are read from the environment once, validated against a TypeBox schema
 * and frozen. A bad setting stops the process with one line naming it.
 */
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
    const shown = env[name] === undefined || env[name] === '' ? 'is missing' : 'is invalid';
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
