import { Type, type Static } from 'typebox';
import { loadConfig, LogLevelSetting } from '../platform/config.ts';

export const EdgeConfigSchema = Type.Object({
  EDGE_DATABASE_URL: Type.String({ pattern: '^postgres(ql)?://' }),
  CENTRAL_URL: Type.String({ pattern: '^https?://' }),
  DEVICE_MAC: Type.String({ minLength: 12, maxLength: 17 }),
  DEVICE_TOKEN: Type.String({ minLength: 8, maxLength: 512 }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8081 }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  LOG_LEVEL: LogLevelSetting,
  SYNC_INTERVAL_SECONDS: Type.Integer({ minimum: 1, maximum: 86_400, default: 300 }),
  /** Each scheduled sync waits a random 0..N seconds, so a fleet does not call Central in lockstep. */
  SYNC_JITTER_SECONDS: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600 })),
  /** A pull that receives no byte for this long is abandoned. */
  HTTP_STALL_TIMEOUT_SECONDS: Type.Integer({ minimum: 1, maximum: 3600, default: 60 }),
  HTTP_RETRY_ATTEMPTS: Type.Integer({ minimum: 0, maximum: 10, default: 3 }),
  SEQ_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
});
export type EdgeConfig = Readonly<Static<typeof EdgeConfigSchema>>;

export function loadEdgeConfig(env: Record<string, string | undefined> = process.env): EdgeConfig {
  return loadConfig(EdgeConfigSchema, env);
}

/** Jitter defaults to a tenth of the interval, at most five minutes. */
export function jitterSeconds(config: EdgeConfig): number {
  return config.SYNC_JITTER_SECONDS ?? Math.min(300, Math.floor(config.SYNC_INTERVAL_SECONDS / 10));
}
