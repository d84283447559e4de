/**
 * Malformed requests for every endpoint of both services, from a seeded generator (the
 * same seed, the same requests), sent over real sockets, and the rule they are judged by:
 * no 500, no crash, and every error in the documented `{ error: { code, message } }` shape
 * with a documented code. Used by `npm run fuzz` (tens of thousands) and by a test.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { ERROR_CODES } from '../src/platform/errors.ts';

export interface FuzzCase {
  target: 'central' | 'edge';
  /** Raw bytes for the socket (malformed requests); otherwise an HTTP request. */
  raw?: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

export interface FuzzAnswer {
  status: number;
  body: string;
}

/** Mulberry32: small, fast, and the same sequence for the same seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Who the fuzz can be: MACs with the credential that works for them, or one that does not
 * (never enrolled, disabled, revoked, another device's), a manifest to ask pieces of, and the
 * admin token. Without a world, every credential is wrong.
 */
export interface FuzzWorld {
  identities: { label: string; mac: string; token: string }[];
  manifestIds: string[];
  adminToken?: string;
  locationId?: string;
}

/** `{mac}` in a path is a MAC the world knows (or a stray string). */
const PATHS = {
  central: [
    '/api/device-sync/request',
    '/api/device-sync/pieces',
    '/api/device-sync/ack',
    '/api/admin/requests/summary',
    '/api/admin/requests/hourly?hours=48',
    '/api/admin/devices/stale?hours=24',
    '/api/admin/devices',
    '/api/admin/devices?limit=2&after={mac}',
    '/api/admin/devices/versions',
    '/api/admin/devices/enroll',
    '/api/admin/devices/{mac}',
    '/api/admin/devices/{mac}/row-deltas',
    '/api/admin/devices/{mac}/events?limit=5',
    '/api/admin/devices/{mac}/disable',
    '/api/admin/devices/{mac}/enable',
    '/api/admin/devices/{mac}/revoke',
    '/dashboard',
    '/dashboard/',
    '/metrics',
    '/healthz',
    '/readyz',
    '/openapi.json',
  ],
  edge: ['/sync/now', '/status', '/metrics', '/healthz', '/readyz'],
};
/** The endpoints that do work past validation, sent to more often. */
const DEEP = [
  '/api/device-sync/request',
  '/api/device-sync/pieces',
  '/api/device-sync/ack',
  '/api/admin/devices/enroll',
  '/api/admin/devices/{mac}/disable',
  '/api/admin/devices/{mac}/enable',
  '/api/admin/devices/{mac}/revoke',
  '/api/admin/devices/{mac}/events?limit=5',
];
const POSTS = new Set(['/sync/now', '/enroll', '/disable', '/enable', '/revoke']);
const isPost = (path: string) =>
  path.startsWith('/api/device-sync') || [...POSTS].some((p) => path.split('?')[0]!.endsWith(p));
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
const TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  '',
  'application/json; charset=latin1',
  '*/*',
];
const STRINGS = [
  '',
  'nope',
  '02:01:00:00:00:00',
  '02-01-00-00-00-00',
  '0201.0000.0000',
  'ZZ:ZZ:ZZ:ZZ:ZZ:ZZ',
  'a\u0000b',
  '\ud800',
  '\u2028',
  "'; DROP TABLE sync_requests; --",
  '<script>alert(1)</script>',
  'x'.repeat(5000),
  '01ARZ3NDEKTSV4RRFFQ69G5FAV',
  '%ff%fe',
];

/** What a client may put on the request line: anything, but percent-encoded (stray % stays). */
function escape(text: string): string {
  return Array.from(text, (ch) =>
    /[\x21-\x7e]/.test(ch) ? ch : encodeURIComponent(ch.isWellFormed() ? ch : '\ufffd'),
  ).join('');
}

const NUMBERS = [0, -1, 1, 2 ** 31 - 1, 2 ** 31, 3_000_000_000, 2 ** 53, -(2 ** 53), 1e308, 0.5, 16_777_215];

export function* fuzzCases(
  count: number,
  seed: number,
  targets: FuzzCase['target'][],
  world: FuzzWorld = { identities: [], manifestIds: [] },
): Generator<FuzzCase> {
  const random = prng(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const macs = [...world.identities.map((i) => i.mac), '02:01:00:00:00:00'];
  const tokens = world.identities.map((i) => `Bearer ${i.token}`);
  const number = () =>
    random() < 0.5 ? pick(NUMBERS) : Math.floor(random() * 2 ** 53) * (random() < 0.5 ? -1 : 1);
  const value = (depth = 0): unknown => {
    const r = random();
    if (r < 0.2) return pick(STRINGS);
    if (r < 0.3) return pick(macs);
    if (r < 0.4) return number();
    if (r < 0.45) return random() < 0.5 ? null : true;
    if (r < 0.55 && depth < 6)
      return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
    if (depth < 6) {
      const keys = [
        'mac',
        'manifestId',
        'status',
        'localCounts',
        'localChecksums',
        'durationMs',
        'error',
        'knownTables',
        'knownGlobalSha256',
        'pieces',
        'nonce',
        'want',
        'users',
        'devices',
        'name',
        'locationId',
        'rotate',
        'overlapSeconds',
        '__proto__',
        'constructor',
        pick(STRINGS),
      ];
      return Object.fromEntries(
        Array.from({ length: Math.floor(random() * 6) }, () => [pick(keys), value(depth + 1)]),
      );
    }
    return 0;
  };
  for (let i = 0; i < count; i++) {
    const target = pick(targets);
    const r = random();
    if (r < 0.05) {
      // Beneath HTTP: what Node's parser refuses before any route.
      const raw = pick([
        'GARBAGE\r\n\r\n',
        `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
        `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`,
        'GET /api/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n',
        'POST /api/device-sync/request HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
        'POST /api/device-sync/request HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
        'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
        'GET / HTTP/9.9\r\n\r\n',
      ]);
      yield { target, raw, method: 'RAW', path: '', headers: {} };
      continue;
    }
    // Half the time one caller of the world, its MAC and its credential together: that is
    // how a request gets past validation to the checks and the work behind them.
    const caller = world.identities.length > 0 && random() < 0.5 ? pick(world.identities) : undefined;
    const path = (
      r < 0.45 && target === 'central'
        ? pick(DEEP)
        : r < 0.85
          ? pick(PATHS[target])
          : `/${escape(pick(STRINGS).slice(0, 100))}?${escape(pick(STRINGS).slice(0, 50))}`
    ).replace('{mac}', () =>
      random() < 0.8 ? (caller?.mac ?? pick(macs)) : escape(pick(STRINGS).slice(0, 40)),
    );
    const method = random() < 0.8 ? (isPost(path) ? 'POST' : 'GET') : pick(METHODS);
    const headers: Record<string, string> = {};
    const type = random() < 0.7 ? 'application/json' : pick(TYPES);
    if (type) headers['content-type'] = type;
    const auth = random();
    const admin = path.startsWith('/api/admin') && world.adminToken;
    if (admin && auth < 0.6) headers.authorization = `Bearer ${world.adminToken}`;
    else if (caller && auth < 0.8) headers.authorization = `Bearer ${caller.token}`;
    else if (auth < 0.4 && tokens.length > 0) headers.authorization = pick(tokens);
    else if (auth < 0.8)
      headers.authorization = pick([
        'Bearer dbu1_wrong',
        'bearer x',
        'Basic Zm9vOmJhcg==',
        'Bearer ',
        `Bearer ${'y'.repeat(600)}`,
      ]);
    if (random() < 0.1) headers['content-encoding'] = pick(['gzip', 'br', 'deflate', 'zstd']);
    if (random() < 0.1) headers['x-forwarded-for'] = pick(['203.0.113.1', 'junk', '::1, 10.0.0.1']);
    let body: Buffer | undefined;
    if (method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS') {
      const b = random();
      body =
        b < 0.45
          ? Buffer.from(
              JSON.stringify(
                plausible(path, random, pick, number, caller ? [caller.mac] : macs, world, value),
              ),
            )
          : b < 0.65
            ? Buffer.from(JSON.stringify(value()))
            : b < 0.75
              ? Buffer.from(
                  Array.from({ length: Math.floor(random() * 300) }, () => Math.floor(random() * 256)),
                )
              : b < 0.85
                ? Buffer.from('{"mac":' + '['.repeat(Math.floor(random() * 2000)))
                : b < 0.95
                  ? Buffer.from(
                      JSON.stringify({ mac: pick(STRINGS), knownTables: { [pick(STRINGS)]: pick(STRINGS) } }),
                    )
                  : Buffer.alloc(20_000 + Math.floor(random() * 40_000), '{');
    }
    yield { target, method, path, headers, ...(body ? { body } : {}) };
  }
}

/** A body close to what the endpoint takes, so that the fuzz gets past validation to the work. */
function plausible(
  path: string,
  random: () => number,
  pick: <T>(list: readonly T[]) => T,
  number: () => number,
  macs: string[],
  world: FuzzWorld,
  value: () => unknown,
): unknown {
  const mac = random() < 0.9 ? pick(macs) : pick(STRINGS);
  const some = <T>(make: () => T) => (random() < 0.85 ? make() : value());
  const run = () => [Math.abs(some(number) as number) % 64, Math.abs(some(number) as number) % 4096];
  if (path.includes('/pieces'))
    return {
      mac,
      manifestId: world.manifestIds.length > 0 && random() < 0.8 ? pick(world.manifestIds) : pick(STRINGS),
      want: {
        [pick(['users', 'groups', 'devices', 'areas', 'nope'])]: [random() < 0.5 ? run() : [0, number()]],
      },
    };
  if (path.includes('/ack'))
    return {
      mac,
      manifestId: world.manifestIds.length > 0 ? pick(world.manifestIds) : pick(STRINGS),
      status: pick(['Success', 'Failed', 'x']),
      localCounts: { users: some(number) },
      localChecksums: { users: pick(['', 'ab'.repeat(32), pick(STRINGS)]) },
      durationMs: some(number),
      error: random() < 0.5 ? null : pick(STRINGS),
    };
  if (path.includes('/enroll'))
    return {
      devices: [{ mac, ...(world.locationId ? { locationId: world.locationId } : {}), name: pick(STRINGS) }],
      rotate: random() < 0.5,
      overlapSeconds: some(number),
    };
  return {
    mac,
    pieces: random() < 0.5,
    ...(random() < 0.5 ? { nonce: pick(['ab'.repeat(16), 'xyz', pick(STRINGS)]) } : {}),
    ...(random() < 0.3 ? { knownGlobalSha256: pick([null, 'ab'.repeat(32), pick(STRINGS)]) } : {}),
  };
}

export function sendCase(
  baseUrl: string,
  c: FuzzCase,
  // /sync/now answers when its sync ends, retries and backoff included.
  timeoutMs = c.path === '/sync/now' ? 180_000 : 30_000,
): Promise<FuzzAnswer> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve) => {
    const done = (status: number, body: string) => {
      clearTimeout(timer);
      resolve({ status, body });
    };
    const timer = setTimeout(() => done(-1, 'no answer in time'), timeoutMs);
    const raw = c.raw;
    if (raw !== undefined) {
      const socket = connect(Number(port), hostname, () => socket.end(raw));
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('error', () => {});
      socket.on('close', () => {
        // A close without an answer is allowed only beneath HTTP (e.g. CONNECT): no status to judge.
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
        // The first answer only: a pipelined request may have drawn a second one.
        const head = text.slice(0, text.indexOf('\r\n\r\n'));
        const length = Number(/^content-length: *(\d+)/im.exec(head)?.[1] ?? Infinity);
        done(status, text.slice(head.length + 4, head.length + 4 + length));
      });
      return;
    }
    const req = request(
      { host: hostname, port, method: c.method, path: c.path, headers: c.headers },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => done(res.statusCode ?? 0, text));
        res.on('error', () => done(res.statusCode ?? 0, text));
      },
    );
    req.on('error', (err) => done(0, `request error: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    req.end(c.body);
  });
}

/** What is wrong with an answer, or undefined when it is as documented. */
export function judge(c: FuzzCase, answer: FuzzAnswer): string | undefined {
  if (answer.status === -1) return 'no answer';
  if (answer.status === 500) return `500: ${answer.body.slice(0, 200)}`;
  if (answer.status === 0) {
    // No HTTP answer at all, not even for CONNECT.
    return `no HTTP answer (${answer.body.slice(0, 80)})`;
  }
  if (answer.status < 400 || c.method === 'HEAD') return undefined;
  if (answer.status === 502 && c.path === '/sync/now') return undefined; // a failed sync, with its result
  let parsed: { error?: { code?: unknown; message?: unknown } };
  try {
    parsed = JSON.parse(answer.body) as typeof parsed;
  } catch {
    return `${answer.status} not JSON: ${answer.body.slice(0, 120)}`;
  }
  const code = parsed.error?.code;
  if (typeof code !== 'string' || !(code in ERROR_CODES))
    return `${answer.status} undocumented code ${String(code)}`;
  if (typeof parsed.error?.message !== 'string') return `${answer.status} ${code} without a message`;
  if (ERROR_CODES[code as keyof typeof ERROR_CODES].status !== answer.status)
    return `${answer.status} carries ${code}, documented as ${ERROR_CODES[code as keyof typeof ERROR_CODES].status}`;
  return undefined;
}
