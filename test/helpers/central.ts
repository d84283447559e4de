/** Central on a real loopback port, over a test database. */
import type { AddressInfo } from 'node:net';
import { loadCentralConfig } from '../../src/central/config.ts';
import { buildCentral } from '../../src/central/server.ts';
import type { TestDatabase } from './db.ts';
import { TEST_KEYS } from './keys.ts';

export interface RunningCentral {
  url: string;
  app: Awaited<ReturnType<typeof buildCentral>>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startCentral(
  db: TestDatabase,
  env: Record<string, string> = {},
): Promise<RunningCentral> {
  const config = loadCentralConfig({
    CENTRAL_DATABASE_URL: db.url,
    PORT: '0',
    HOST: '127.0.0.1',
    MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey,
    ...env,
  });
  const app = await buildCentral(config, db.pool, { logger: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, app, [Symbol.asyncDispose]: () => app.close() };
}
