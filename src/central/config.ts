import { Type, type Static } from 'typebox';
import { loadConfig, LogFormatSetting, LogLevelSetting, secret } from '../platform/config.ts';
import { parseSigningKey, type SigningKey } from '../contract/signing.ts';
import type { TlsFiles } from '../platform/tls.ts';
import { AppError } from '../platform/errors.ts';
import { TABLE_NAMES } from '../contract/tables.ts';
import { guardLimits, type GuardLimits, type TableLimit } from './release/rule.ts';
import type { Staging } from './release/waves.ts';
import { parseWindows, WINDOW_PATTERN, type SyncWindow } from './release/windows.ts';

const GUARD_TABLE = '[a-z_]+:(off|[0-9]{1,3}:[0-9]{1,9})';
const GUARD_TABLES_PATTERN = `^(${GUARD_TABLE}(,${GUARD_TABLE})*)?$`;

export const CentralConfigSchema = Type.Object({
  CENTRAL_DATABASE_URL: secret(Type.String({ pattern: '^postgres(ql)?://' })),
  /**
   * A streaming replica of it: snapshot reads go there (audit, manifests, credentials and acks
   * stay on the primary); a replica behind a device's scope, or down, is read from the primary.
   */
  CENTRAL_READ_DATABASE_URL: Type.Optional(secret(Type.String({ pattern: '^postgres(ql)?://' }))),
  /**
   * Redis (redis://…) holding the per-device and overall request budgets, so that they hold
   * across Central replicas; unset, each Central counts by itself.
   */
  RATE_LIMIT_REDIS_URL: Type.Optional(secret(Type.String({ pattern: '^rediss?://' }))),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  LOG_LEVEL: LogLevelSetting,
  LOG_FORMAT: LogFormatSetting,
  MANIFEST_TTL_SECONDS: Type.Integer({ minimum: 10, maximum: 86_400, default: 900 }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 256, maximum: 1_048_576, default: 16_384 }),
  /** Connections for short queries; snapshots have their own MAX_CONCURRENT_SNAPSHOTS. */
  DB_POOL_MAX: Type.Integer({ minimum: 2, maximum: 200, default: 10 }),
  SEQ_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  /** Sent as X-Seq-ApiKey when Seq requires one. */
  SEQ_API_KEY: Type.Optional(secret(Type.String({ minLength: 1 }))),
  /** Ed25519 private key (base64 PKCS#8 DER or PEM) from `dbupdate central keygen`. */
  MANIFEST_SIGNING_KEY: secret(Type.String({ minLength: 40 })),
  /** Bearer token of the admin API (/api/admin/*); the admin API is closed without it. */
  ADMIN_TOKEN: Type.Optional(secret(Type.String({ minLength: 24, maxLength: 512 }))),
  /** `mac-only` trusts the MAC alone: for labs, never for a fleet; warned at every start. */
  AUTH_MODE: Type.Union([Type.Literal('credential'), Type.Literal('mac-only')], { default: 'credential' }),
  RATE_LIMIT_PER_DEVICE_PER_MINUTE: Type.Integer({ minimum: 1, maximum: 100_000, default: 30 }),
  /** Requests a minute from one address, counted before authentication (a site's NAT holds many devices). */
  RATE_LIMIT_PER_SOURCE_PER_MINUTE: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 600 }),
  RATE_LIMIT_GLOBAL_PER_MINUTE: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 20_000 }),
  /** Snapshot sessions at once (each holds a connection); beyond it requests wait, then Central answers 503 with Retry-After. */
  MAX_CONCURRENT_SNAPSHOTS: Type.Integer({ minimum: 1, maximum: 1000, default: 16 }),
  /**
   * Answers that send rows at once, from memory or from a session; beyond it requests wait
   * and are shed as above. Those that hold a session count against MAX_CONCURRENT_SNAPSHOTS too.
   */
  MAX_CONCURRENT_ANSWERS: Type.Integer({ minimum: 1, maximum: 10_000, default: 64 }),
  /**
   * Answers one device may hold at once (requests and piece fetches); beyond it 429 with
   * Retry-After. An edge asks one at a time: 2 leaves room for one abandoned by a broken link.
   */
  MAX_ANSWERS_PER_DEVICE: Type.Integer({ minimum: 1, maximum: 1000, default: 2 }),
  /** Requests that wait for a snapshot slot before being shed, and how long each may wait (0: shed at once). */
  SNAPSHOT_QUEUE_LENGTH: Type.Integer({ minimum: 0, maximum: 100_000, default: 256 }),
  SNAPSHOT_QUEUE_WAIT_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 2000 }),
  /**
   * Whose X-Forwarded-For to believe: unset or `false` (nobody: the socket's address counts),
   * `true` (anyone: only behind a proxy that overwrites it), or the proxies' addresses or
   * CIDRs, comma separated.
   */
  TRUST_PROXY: Type.Optional(Type.String({ pattern: '^(true|false|[0-9a-fA-F.:/, ]+)$' })),
  /** A snapshot stream moving fewer bytes a second than this over a whole window is cut (slow readers). */
  SNAPSHOT_MIN_BYTES_PER_SECOND: Type.Integer({ minimum: 1, maximum: 100_000_000, default: 1024 }),
  SNAPSHOT_SLOW_WINDOW_SECONDS: Type.Integer({ minimum: 1, maximum: 3600, default: 30 }),
  /** A request row still 'started' after this long belonged to a Central that died: closed as aborted. */
  ABANDONED_REQUEST_SECONDS: Type.Integer({ minimum: 60, maximum: 604_800, default: 3600 }),
  /** PEM certificate (chain) and key: Central serves HTTPS itself, reloading both on SIGHUP. */
  TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1 })),
  TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** Devices whose manifest digests are kept in memory (about 1 KB each). */
  DIGEST_CACHE_ENTRIES: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 100_000 }),
  /** Memory for table rows kept by content and served to every device whose scope holds the same (0: off). */
  TABLE_CACHE_MB: Type.String({
    pattern: '^(auto|0|[1-9][0-9]{0,4})$',
    default: 'auto',
    description:
      'megabytes, or auto: sized at start from the fleet and the memory given (sync/memory/sizing.ts)',
  }),
  /** The most rows sent inline, after the manifest, to an edge that holds nothing (0: never). */
  INLINE_PIECES_KB: Type.Integer({ minimum: 0, maximum: 16_384, default: 256 }),
  /** Device credentials kept verified in memory (a hash check each saved); about 200 bytes each. */
  CREDENTIAL_CACHE_ENTRIES: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 100_000 }),
  /** How long a verified (or refused) credential is believed before it is checked again. */
  CREDENTIAL_CACHE_SECONDS: Type.Integer({ minimum: 1, maximum: 86_400, default: 900 }),
  /**
   * The mass-change guard (docs/releases.md): a change that would remove more than this
   * percent of a table's rows from what a device holds, and at least RELEASE_GUARD_MIN_ROWS,
   * is held for the whole fleet until approved (0: no guard).
   */
  RELEASE_GUARD_PERCENT: Type.Integer({ minimum: 0, maximum: 100, default: 20 }),
  RELEASE_GUARD_MIN_ROWS: Type.Integer({ minimum: 1, maximum: 100_000_000, default: 50 }),
  /** Per table, over the two above: `users:10:100,areas:off` (table:percent:min-rows, or table:off). */
  RELEASE_GUARD_TABLES: Type.String({ pattern: GUARD_TABLES_PATTERN, default: '' }),
  /** How often each Central reads the release state again (a pause or a decision made elsewhere). */
  RELEASE_REFRESH_SECONDS: Type.Integer({ minimum: 1, maximum: 300, default: 2 }),
  /** A freeze longer than this raises DbupdateReleaseFrozenTooLong. */
  RELEASE_FREEZE_ALERT_MINUTES: Type.Integer({ minimum: 1, maximum: 43_200, default: 240 }),
  /**
   * Staged rollouts (docs/releases.md): each wave reaches this percent more of the devices, after
   * the canary cohort acked; 0: every change goes to every device at once.
   */
  RELEASE_WAVE_PERCENT: Type.Integer({ minimum: 0, maximum: 100, default: 0 }),
  RELEASE_WAVE_SECONDS: Type.Integer({ minimum: 1, maximum: 604_800, default: 900 }),
  RELEASE_CANARY_COHORT: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$', default: 'canary' }),
  /** Canaries that must ack a rollout's change (or all of them, when fewer) before the first wave. */
  RELEASE_CANARY_ACKS: Type.Integer({ minimum: 0, maximum: 100_000, default: 3 }),
  /** Devices failing (failed acks, drift reports) during a rollout that pause it, naming the cause. */
  RELEASE_ROLLOUT_MAX_FAILURES: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 }),
  /** Sync windows per cohort, in UTC: `site-a=02:00-05:00,site-b=22:00-04:00`. */
  RELEASE_WINDOWS: Type.String({ pattern: WINDOW_PATTERN, default: '' }),
  /** A change adding or removing at least this many rows of a device waits for its window. */
  RELEASE_WINDOW_BULK_ROWS: Type.Integer({ minimum: 1, maximum: 100_000_000, default: 100 }),
});

/** The settings, and the values parsed from them once at start. */
export type CentralConfig = Readonly<
  Static<typeof CentralConfigSchema> & {
    signingKey: SigningKey;
    tls: TlsFiles | undefined;
    guardLimits: GuardLimits;
    /** TABLE_CACHE_MB parsed: megabytes, or sized at start. */
    tableCacheMb: number | 'auto';
    staging: Staging;
    windows: ReadonlyMap<string, SyncWindow>;
  }
>;

export function loadCentralConfig(env: Record<string, string | undefined> = process.env): CentralConfig {
  const config = loadConfig(CentralConfigSchema, env);
  let signingKey: SigningKey;
  try {
    signingKey = parseSigningKey(config.MANIFEST_SIGNING_KEY);
  } catch (err) {
    throw new AppError(
      'CONFIG_INVALID',
      `setting MANIFEST_SIGNING_KEY is invalid: ${(err as Error).message}`,
    );
  }
  if ((config.TLS_CERT_FILE === undefined) !== (config.TLS_KEY_FILE === undefined)) {
    throw new AppError(
      'CONFIG_INVALID',
      'setting TLS_CERT_FILE and TLS_KEY_FILE go together: set both or neither',
    );
  }
  const tls =
    config.TLS_CERT_FILE && config.TLS_KEY_FILE
      ? { certFile: config.TLS_CERT_FILE, keyFile: config.TLS_KEY_FILE }
      : undefined;
  const guard = guardLimits(
    TABLE_NAMES,
    config.RELEASE_GUARD_PERCENT,
    config.RELEASE_GUARD_MIN_ROWS,
    guardOverrides(config.RELEASE_GUARD_TABLES),
  );
  return Object.freeze({
    ...config,
    signingKey,
    tls,
    guardLimits: guard,
    tableCacheMb: config.TABLE_CACHE_MB === 'auto' ? 'auto' : Math.min(65_536, Number(config.TABLE_CACHE_MB)),
    staging: {
      wavePercent: config.RELEASE_WAVE_PERCENT,
      waveSeconds: config.RELEASE_WAVE_SECONDS,
      canaryCohort: config.RELEASE_CANARY_COHORT,
      canaryAcks: config.RELEASE_CANARY_ACKS,
      maxFailures: config.RELEASE_ROLLOUT_MAX_FAILURES,
    },
    windows: windowsOf(config.RELEASE_WINDOWS),
  });
}

function windowsOf(text: string): Map<string, SyncWindow> {
  try {
    return parseWindows(text);
  } catch (err) {
    throw new AppError('CONFIG_INVALID', `setting RELEASE_WINDOWS is invalid: ${(err as Error).message}`);
  }
}

function guardOverrides(text: string): { table: string; limit: TableLimit | 'off' }[] {
  return text
    .split(',')
    .filter(Boolean)
    .map((entry) => {
      const [table, percent, minRows] = entry.split(':') as [string, string, string?];
      if (!(TABLE_NAMES as readonly string[]).includes(table) || Number(percent) > 100)
        throw new AppError(
          'CONFIG_INVALID',
          `setting RELEASE_GUARD_TABLES is invalid at "${entry}": name one of ${TABLE_NAMES.join(', ')}, with a percent from 0 to 100 (or off)`,
        );
      return {
        table,
        limit: percent === 'off' ? 'off' : { percent: Number(percent), minRows: Number(minRows) },
      };
    });
}
