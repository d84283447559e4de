/**
 * One error type for the whole system. Every code is stable and documented in
 * docs/errors.md (a test keeps the two in step); messages are for people, codes
 * are for programs.
 */
export const ERROR_CODES = {
  INVALID_INPUT: { status: 400, description: 'The request body or query failed validation.' },
  INVALID_MAC: { status: 400, description: 'The MAC address is not in a recognised spelling.' },
  UNAUTHENTICATED: { status: 401, description: 'Missing or wrong device credential.' },
  DEVICE_DISABLED: { status: 403, description: 'The device exists but is disabled; it gets no data.' },
  MANIFEST_FORBIDDEN: { status: 403, description: 'The manifest belongs to another device.' },
  DEVICE_NOT_FOUND: { status: 404, description: 'No device has this MAC.' },
  MANIFEST_NOT_FOUND: { status: 404, description: 'No manifest has this id.' },
  ROUTE_NOT_FOUND: { status: 404, description: 'No such endpoint.' },
  REQUEST_TIMEOUT: {
    status: 408,
    description: 'The request did not arrive in time; the connection is closed.',
  },
  BODY_TOO_LARGE: { status: 413, description: 'The request body exceeds the configured limit.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, description: 'The request body is not application/json.' },
  HEADERS_TOO_LARGE: { status: 431, description: 'The request headers exceed the server limit.' },
  RATE_LIMITED: {
    status: 429,
    description: 'Too many requests from this device, or overall; retry after the Retry-After seconds.',
  },
  OVERLOADED: { status: 503, description: 'Central is shedding load; retry after the Retry-After seconds.' },
  DATABASE_UNAVAILABLE: { status: 503, description: 'The database cannot be reached; retry later.' },
  DATABASE_ACCESS_DENIED: {
    status: 500,
    description:
      'The database refused this login or operation (wrong password, missing database or role, missing privilege); fix the URL or the grants.',
  },
  PORT_IN_USE: {
    status: 500,
    description: 'The service cannot listen on its PORT and HOST (in use, or not allowed); choose another.',
  },
  NOT_READY: { status: 503, description: 'The service is not ready (database unreachable or not migrated).' },
  INTERNAL: { status: 500, description: 'An unexpected failure; details are in the service log only.' },
  SNAPSHOT_FAILED: { status: 500, description: 'Central data could not be turned into a snapshot.' },
  CONFIG_INVALID: {
    status: 500,
    description: 'A setting is missing or invalid; the process stops at start.',
  },
  MIGRATION_UNKNOWN: {
    status: 500,
    description: 'The database has migrations this code does not know (it is newer); refusing to run.',
  },
  MIGRATION_FAILED: { status: 500, description: 'A migration failed and was rolled back.' },
  SEED_NOT_EMPTY: {
    status: 409,
    description: 'Seeding refused: the data tables are not empty (use --reset).',
  },
  USAGE: { status: 400, description: 'The command line is wrong.' },
  NOTHING_HELD: {
    status: 409,
    description: 'Approve or reject found no change held by the mass-change guard.',
  },
  SYNC_IN_PROGRESS: {
    status: 409,
    description: 'Edge: another sync holds the sync lock; try again when it ends.',
  },
  CENTRAL_UNREACHABLE: {
    status: 502,
    description: 'Edge: Central did not answer (network, timeout, 5xx after retries, or circuit open).',
  },
  CENTRAL_REFUSED: {
    status: 502,
    description: 'Edge: Central refused the request; its own code is in the message.',
  },
  SNAPSHOT_INVALID: {
    status: 502,
    description:
      'Edge: the snapshot stream is malformed, truncated, stalled or does not fit the local schema.',
  },
  SCHEMA_VERSION_MISMATCH: {
    status: 409,
    description: "Edge: the manifest's schema version differs from the edge's; nothing is loaded.",
  },
  SCHEMA_VERSION_UNSUPPORTED: {
    status: 409,
    description:
      "Central does not serve the edge's schema version; the message names the versions it serves and which side to upgrade.",
  },
  TRANSFER_CUT: {
    status: 502,
    description:
      'Edge: the connection to Central broke during a transfer and resuming did not finish in time; the pieces received are kept for the next sync.',
  },
  MANIFEST_SUPERSEDED: {
    status: 409,
    description:
      'Edge: the data changed while the pieces of a manifest were fetched; the next sync asks for a new manifest and keeps the pieces received.',
  },
  MANIFEST_EXPIRED: {
    status: 409,
    description:
      'The manifest expired before it could be applied (Edge), or before its pieces were asked for (Central).',
  },
  MANIFEST_STALE: {
    status: 409,
    description:
      'Edge: the manifest was generated before the data this edge holds (a replay or a rollback); nothing is loaded.',
  },
  MANIFEST_NOT_FOR_DEVICE: {
    status: 409,
    description: "Edge: the manifest's filters name another device; nothing is loaded.",
  },
  SYNC_DEADLINE: {
    status: 504,
    description: 'Edge: the sync ran past SYNC_DEADLINE_SECONDS (a trickling link); rolled back.',
  },
  MANIFEST_ALREADY_APPLIED: {
    status: 409,
    description: 'Edge: this manifest was applied before; not applied twice.',
  },
  MANIFEST_SIGNATURE_INVALID: {
    status: 502,
    description:
      'Edge: the manifest is unsigned, or signed by a key this edge does not trust; nothing is loaded.',
  },
  HASH_MISMATCH: {
    status: 502,
    description:
      'Edge: counts or hashes of the loaded tables differ from the manifest; the load was rolled back.',
  },
  LOAD_FAILED: { status: 500, description: 'Edge: the local load failed and was rolled back.' },
  SYNC_INTERRUPTED: { status: 500, description: 'Edge ledger: the process stopped while this sync ran.' },
  LOCAL_DRIFT: {
    status: 409,
    description: 'Edge verify: local tables differ from the last applied manifest (the tables are named).',
  },
  NOTHING_APPLIED: { status: 404, description: 'Edge verify: no manifest has been applied yet.' },
  EMBEDDED_POSTGRES_FAILED: {
    status: 500,
    description:
      'Demo and tests: the embedded PostgreSQL could not be set up or started; the message says why and what to do.',
  },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;
  /**
   * The message quotes a raw failure (host names, ports, SQL): fit for the log and the
   * operator's terminal, not for a remote client, which gets the code's description.
   */
  readonly internal: boolean;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown>; internal?: boolean },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.details = options?.details;
    this.internal = options?.internal ?? false;
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/** SQLSTATEs meaning "the database is not there right now", as opposed to a bug. */
const UNAVAILABLE_SQLSTATES = new Set([
  '57P01',
  '57P02',
  '57P03',
  '53300',
  '08000',
  '08001',
  '08003',
  '08006',
]);
const UNAVAILABLE_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'EHOSTUNREACH',
]);

export function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (UNAVAILABLE_SQLSTATES.has(code) || UNAVAILABLE_ERRNOS.has(code)))
    return true;
  const message = (err as Error | null)?.message ?? '';
  return /Connection terminated|timeout exceeded when trying to connect/i.test(message);
}

/** SQLSTATEs of a database that answers but refuses: a setting or a grant to fix, not a retry. */
const ACCESS_SQLSTATES: Record<string, string> = {
  '28P01': 'check the user and password in the database URL',
  '28000': "check the user in the database URL and the server's pg_hba.conf",
  '3D000': 'create the database, or fix its name in the URL',
  '42501': 'grant the role the privileges listed in the README (least privilege)',
};

/**
 * Any thrown value as an AppError with a stable code and a message that says what to do:
 * AppErrors as they are; database and network failures by their SQLSTATE or errno;
 * anything else gets `fallback` (INTERNAL unless the caller knows better, e.g. the
 * edge's LOAD_FAILED). The one normaliser of the HTTP handler, the services and the CLI.
 */
export function normalizeError(err: unknown, fallback: ErrorCode = 'INTERNAL'): AppError {
  if (isAppError(err)) return err;
  const e = (err ?? {}) as { code?: unknown; message?: string; address?: string; port?: number };
  const code = typeof e.code === 'string' ? e.code : '';
  const message = e.message ?? String(err);
  const derived = { cause: err, internal: true };
  const fix = ACCESS_SQLSTATES[code];
  if (fix) return new AppError('DATABASE_ACCESS_DENIED', `${message}: ${fix}`, derived);
  if (code === 'EADDRINUSE' || (code === 'EACCES' && e.port !== undefined)) {
    const where = `${e.address ?? ''}:${e.port ?? ''}`;
    const why = code === 'EADDRINUSE' ? 'is in use' : 'needs privileges this process lacks';
    return new AppError(
      'PORT_IN_USE',
      `cannot listen on ${where}: it ${why}; set PORT (or HOST) to another`,
      derived,
    );
  }
  if (isDatabaseUnavailable(err)) {
    const hint =
      code === 'ENOTFOUND' || code === 'EAI_AGAIN'
        ? 'unknown host: check the host name in the database URL'
        : 'is PostgreSQL running there, and does the URL name the right host and port?';
    return new AppError('DATABASE_UNAVAILABLE', `database unavailable (${message}): ${hint}`, derived);
  }
  return new AppError(fallback, fallback === 'INTERNAL' ? 'internal error' : message, derived);
}

/** What a remote client is told: never the text of a raw failure. */
export function publicMessage(err: AppError): string {
  return err.internal ? ERROR_CODES[err.code].description : err.message;
}
