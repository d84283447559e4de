/** `npm run schema:update`: rewrites test/schema/*.sql from freshly migrated databases. */
import { writeFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedCluster } from '../src/platform/embedded.ts';
import { dumpSchema } from './helpers/schema-dump.ts';
import { databaseUrl } from '../src/platform/db.ts';
import { prepareTemplates, TEMPLATES } from './helpers/templates.ts';

const dir = await mkdtemp(join(tmpdir(), 'dbupdate-schema-'));
const cluster = await startEmbeddedCluster({ dataDir: dir, name: 'schema' });
try {
  const admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  await prepareTemplates(admin, cluster.url);
  await admin.end();
  for (const [kind, name] of Object.entries(TEMPLATES)) {
    const client = new pg.Client({ connectionString: databaseUrl(cluster.url, name) });
    await client.connect();
    const file = new URL(`./schema/${kind}.sql`, import.meta.url);
    await writeFile(file, await dumpSchema(client));
    await client.end();
    console.log(`wrote ${file.pathname}`);
  }
} finally {
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
}
