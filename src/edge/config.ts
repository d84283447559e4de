import { X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Type, type Static } from 'typebox';
import { loadConfig, LogFormatSetting, LogLevelSetting, secret } from '../platform/config.ts';
import { normalizeMac, MAC_FORMS } from '../contract/mac.ts';
import { parsePublicKeys } from '../contract/signing.ts';
import { AppError } from '../platform/errors.ts';
import { isLoopback } from '../platform/http.ts';

/**
 * A database role the Jetson's other services read the synced tables as: granted SELECT on
 * the data tables (not the ledger) after every migration, so later versions' tables too.
 */
export const ReaderRoleSetting = Type.Optional(
  Type.String({ pattern: '^[a-z_][a-z0-9_]{0,62}$', description: 'an existing role' }),
);

export const EdgeConfigSchema = Type.Object({
  EDGE_DATABASE_URL: secret(Type.String({ pattern: '^postgres(ql)?://' })),
  EDGE_READER_ROLE: ReaderRoleSetting,
  CENTRAL_URL: Type.String({ pattern: '^https?://' }),
  DEVICE_MAC: Type.String({ minLength: 12, maxLength: 17 }),
  /** The credential from `dbupdate central enroll`; required unless AUTH_MODE=mac-only. */
  DEVICE_TOKEN: Type.Optional(secret(Type.String({ minLength: 8, maxLength: 512 }))),
  /** `mac-only`: no DEVICE_TOKEN, for a lab Central in the same mode; warned at start. */
  AUTH_MODE: Type.Union([Type.Literal('credential'), Type.Literal('mac-only')], { default: 'credential' }),
  /** Central's manifest public keys (base64 SPKI DER or PEM), comma separated: several during a key rotation. */
  MANIFEST_PUBLIC_KEYS: Type.String({ minLength: 40 }),
  /** PEM CA certificate(s) Central's certificate must chain to, instead of the system's (pinning). */
  CENTRAL_CA_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** `true` allows plain http:// to a Central that is not on this machine: for labs only, warned at start. */
  ALLOW_INSECURE_HTTP: Type.Boolean({ default: false }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8081 }),
  /** Opens /sync/now and /status to callers that present it; without it, only to this machine. */
  LOCAL_API_TOKEN: Type.Optional(secret(Type.String({ minLength: 24, maxLength: 512 }))),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  LOG_LEVEL: LogLevelSetting,
  LOG_FORMAT: LogFormatSetting,
  SYNC_INTERVAL_SECONDS: Type.Integer({ minimum: 1, maximum: 86_400, default: 300 }),
  /** A verify of the local tables every this many seconds (0: never); drift is reported to Central. */
  VERIFY_INTERVAL_SECONDS: Type.Integer({ minimum: 0, maximum: 30 * 86_400, default: 0 }),
  /** `true`: drift found by the scheduled verify is repaired at once by a full reload (a ledger row says so). */
  VERIFY_REPAIR: Type.Boolean({ default: false }),
  /** Each scheduled sync waits a random 0..N seconds, so a fleet does not call Central in lockstep. */
  SYNC_JITTER_SECONDS: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600 })),
  /** A pull that receives no byte for this long is abandoned. */
  HTTP_STALL_TIMEOUT_SECONDS: Type.Integer({ minimum: 1, maximum: 3600, default: 60 }),
  /** The longest one sync may take, pull to commit, however steadily bytes trickle in. */
  SYNC_DEADLINE_SECONDS: Type.Integer({ minimum: 10, maximum: 86_400, default: 900 }),
  HTTP_RETRY_ATTEMPTS: Type.Integer({ minimum: 0, maximum: 10, default: 3 }),
  /**
   * Data that no sync confirmed (success or unchanged) for this many days is emptied, in one
   * transaction with a ledger row and a NOTIFY (docs/releases.md); 0: kept however old.
   */
  DATA_LIFETIME_DAYS: Type.Integer({ minimum: 0, maximum: 3650, default: 0 }),
  /**
   * The most kilobytes a second a sync draws from Central, counted as they cross the link
   * (compressed); 0: no cap. Above Central's slow-reader floor (SNAPSHOT_MIN_BYTES_PER_SECOND).
   */
  DOWNLOAD_RATE_KBPS: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 0 }),
  SEQ_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  /** Sent as X-Seq-ApiKey when Seq requires one. */
  SEQ_API_KEY: Type.Optional(secret(Type.String({ minLength: 1 }))),
});

/** The settings, and the values parsed from them once at start. */
export type EdgeConfig = Readonly<
  Static<typeof EdgeConfigSchema> & {
    /** DEVICE_MAC in its one stored form. */
    mac: string;
    /** MANIFEST_PUBLIC_KEYS by key id. */
    publicKeys: ReadonlyMap<string, KeyObject>;
    /** The CENTRAL_CA_FILE's certificates, read at start. */
    centralCa: Buffer | undefined;
    /** Plain http:// to a Central elsewhere, allowed by ALLOW_INSECURE_HTTP (warned at start). */
    insecureCentral: boolean;
  }
>;

export function loadEdgeConfig(env: Record<string, string | undefined> = process.env): EdgeConfig {
  const config = loadConfig(EdgeConfigSchema, env);
  let publicKeys: ReadonlyMap<string, KeyObject>;
  try {
    publicKeys = parsePublicKeys(config.MANIFEST_PUBLIC_KEYS);
  } catch (err) {
    throw new AppError(
      'CONFIG_INVALID',
      `setting MANIFEST_PUBLIC_KEYS is invalid: ${(err as Error).message}`,
    );
  }
  const central = new URL(config.CENTRAL_URL);
  const insecureCentral = central.protocol === 'http:' && !isLoopback(central.hostname);
  if (insecureCentral && !config.ALLOW_INSECURE_HTTP) {
    throw new AppError(
      'CONFIG_INVALID',
      `setting CENTRAL_URL is plain http:// to ${central.hostname}: the device credential would travel in clear; use https:// (or ALLOW_INSECURE_HTTP=true in a lab)`,
    );
  }
  if (config.DEVICE_TOKEN === undefined && config.AUTH_MODE === 'credential')
    throw new AppError(
      'CONFIG_INVALID',
      'setting DEVICE_TOKEN is not set: it is the line `dbupdate central enroll --mac M` printed ' +
        '(only a lab Central in AUTH_MODE=mac-only needs none: then set AUTH_MODE=mac-only here too)',
    );
  const mac = normalizeMac(config.DEVICE_MAC);
  if (!mac) {
    throw new AppError(
      'CONFIG_INVALID',
      `setting DEVICE_MAC is invalid: ${JSON.stringify(config.DEVICE_MAC)}; expected ${MAC_FORMS}`,
    );
  }
  return Object.freeze({
    ...config,
    mac,
    publicKeys,
    centralCa: readCa(config.CENTRAL_CA_FILE),
    insecureCentral,
  });
}

/**
 * The pinned CA, read and checked once at start: PEM certificates only. A private key there
 * is a secret copied to the wrong place; a file of no certificate pins nothing.
 */
function readCa(file: string | undefined): Buffer | undefined {
  if (!file) return undefined;
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    throw new AppError('CONFIG_INVALID', `setting CENTRAL_CA_FILE cannot be read: ${(err as Error).message}`);
  }
  const text = pem.toString('latin1');
  const refuse = (why: string) => new AppError('CONFIG_INVALID', `setting CENTRAL_CA_FILE (${file}) ${why}`);
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text))
    throw refuse(
      "holds a private key: it must hold only the CA's certificate (ca.pem), never a key; remove the key and keep it off the device",
    );
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0)
    throw refuse(
      "holds no PEM certificate (-----BEGIN CERTIFICATE-----): give the CA certificate that signed Central's",
    );
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw refuse(`holds a certificate that does not parse: ${(err as Error).message}`);
    }
  }
  return pem;
}

/** Jitter defaults to a tenth of the interval, at most five minutes. */
export function jitterSeconds(config: EdgeConfig): number {
  return config.SYNC_JITTER_SECONDS ?? Math.min(300, Math.floor(config.SYNC_INTERVAL_SECONDS / 10));
}
