/** Central on a real loopback port, over a test database. */
import type { AddressInfo } from 'node:net';
import { loadCentralConfig } from '../../src/central/config.ts';
import { buildCentral } from '../../src/central/server.ts';
import { enrollDevice } from '../../src/central/fleet/enroll.ts';
import { DEFAULT_SHAPE, seedCentral } from '../../src/central/fleet/seed.ts';
import { after, before } from 'node:test';
import { createTestDatabase, type TestDatabase } from './db.ts';
import { TEST_KEYS } from './keys.ts';
import type { Logger } from '../../src/platform/logger.ts';

export interface RunningCentral {
  url: string;
  app: Awaited<ReturnType<typeof buildCentral>>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startCentral(
  db: TestDatabase,
  env: Record<string, string> = {},
  logger: Logger | false = false,
  /** A data-model version defined by the test, and the migrations to it. */
  build: Pick<NonNullable<Parameters<typeof buildCentral>[2]>, 'dataModels' | 'migrations'> = {},
): Promise<RunningCentral> {
  // PORT in `env` brings a Central back on the address its devices know.
  const config = loadCentralConfig({
    CENTRAL_DATABASE_URL: db.url,
    PORT: '0',
    HOST: '127.0.0.1',
    MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey,
    ...env,
  });
  const app = await buildCentral(config, db.pool, { logger, ...build });
  await app.listen({ port: config.PORT, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, app, [Symbol.asyncDispose]: () => app.close() };
}

/** One company with one location whose scope holds `users` users; its first device enrolled. */
export async function seedOneScope(db: TestDatabase, users: number): Promise<{ mac: string; token: string }> {
  const seeded = await seedCentral(
    db.pool,
    {
      ...DEFAULT_SHAPE,
      companies: 1,
      locationsPerCompany: 1,
      groupsPerCompany: 4,
      groupsPerLocation: 4,
      usersPerCompany: users,
    },
    { reset: false },
  );
  const mac = seeded.devices[0]!.mac;
  return { mac, token: (await enrollDevice(db.pool, mac)).secret };
}

/** Seeds `shape` (over the defaults) and enrolls every device: MACs in order, credentials by MAC. */
export async function seedEnrolledDevices(
  db: TestDatabase,
  shape: Partial<typeof DEFAULT_SHAPE>,
): Promise<{ macs: string[]; tokens: Map<string, string> }> {
  const seeded = await seedCentral(db.pool, { ...DEFAULT_SHAPE, ...shape }, { reset: false });
  const macs = seeded.devices.map((d) => d.mac);
  const tokens = new Map<string, string>();
  for (const mac of macs) tokens.set(mac, (await enrollDevice(db.pool, mac)).secret);
  return { macs, tokens };
}

/**
 * For a describe block: a Central over one scope of `users` users (seedOneScope), started
 * before its tests and stopped after them, and fresh edge databases on demand, dropped after.
 */
export function oneScopeCentral(users: number, env: Record<string, string> = {}) {
  let state: { db: TestDatabase; central: RunningCentral; mac: string; token: string } | undefined;
  const edges: TestDatabase[] = [];
  const started = () => {
    if (!state) throw new Error('the Central starts in before()');
    return state;
  };
  before(async () => {
    const db = await createTestDatabase('central');
    const { mac, token } = await seedOneScope(db, users);
    state = { db, central: await startCentral(db, env), mac, token };
  });
  after(async () => {
    await state?.central[Symbol.asyncDispose]();
    for (const edge of edges) await edge[Symbol.asyncDispose]();
    await state?.db[Symbol.asyncDispose]();
  });
  return {
    get centralDb() {
      return started().db;
    },
    get central() {
      return started().central;
    },
    get mac() {
      return started().mac;
    },
    get token() {
      return started().token;
    },
    async newEdge(): Promise<TestDatabase> {
      const edge = await createTestDatabase('edge');
      edges.push(edge);
      return edge;
    },
  };
}
