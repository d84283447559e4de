import { Type, type Static } from 'typebox';
import { loadConfig, LogLevelSetting } from '../platform/config.ts';

export const CentralConfigSchema = Type.Object({
  CENTRAL_DATABASE_URL: Type.String({ pattern: '^postgres(ql)?://' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  LOG_LEVEL: LogLevelSetting,
  MANIFEST_TTL_SECONDS: Type.Integer({ minimum: 10, maximum: 86_400, default: 900 }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 256, maximum: 1_048_576, default: 16_384 }),
  DB_POOL_MAX: Type.Integer({ minimum: 2, maximum: 200, default: 20 }),
  SEQ_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
});
export type CentralConfig = Readonly<Static<typeof CentralConfigSchema>>;

export function loadCentralConfig(env: Record<string, string | undefined> = process.env): CentralConfig {
  return loadConfig(CentralConfigSchema, env);
}
