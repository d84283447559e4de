/**
 * Settings are read from the environment once, validated against a TypeBox schema
 * and frozen. A bad setting stops the process with one line naming it.
 */
import { Value } from 'typebox/value';
import { Type, type TObject, type Static } from 'typebox';
import { AppError } from './errors.ts';

export function loadConfig<T extends TObject>(
  schema: T,
  env: Record<string, string | undefined> = process.env,
): Readonly<Static<T>> {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(schema.properties)) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const withDefaults = Value.Default(schema, raw) as Record<string, unknown>;
  const converted = Value.Convert(schema, withDefaults) as Record<string, unknown>;
  const first = Value.Errors(schema, converted)[0];
  if (first) {
    const path = (first as { instancePath?: string }).instancePath ?? '';
    const params = (first as { params?: { requiredProperties?: string[] } }).params;
    const name = path.replace(/^\//, '') || params?.requiredProperties?.[0] || 'configuration';
    const shown = env[name] === undefined || env[name] === '' ? 'is missing' : 'is invalid';
    throw new AppError('CONFIG_INVALID', `setting ${name} ${shown}: ${first.message}`, { details: { name } });
  }
  return Object.freeze(converted) as Readonly<Static<T>>;
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const LogLevelSetting = Type.Union(
  LEVELS.map((level) => Type.Literal(level)),
  { default: 'info' },
);
