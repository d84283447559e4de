/**
 * The containers, without a container engine: every service of our Compose stacks is
 * checked against what the code accepts, then started natively with exactly the
 * command and environment its Compose definition and Dockerfile target give it
 * (database and Central hosts mapped to loopback), and a device syncs end to end.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { parse } from 'yaml';
import { CentralConfigSchema } from '../src/central/config.ts';
import { EdgeConfigSchema } from '../src/edge/config.ts';
import { freePort } from '../src/platform/embedded.ts';
import { cacheEntries } from '../scripts/lib/compile-cache.ts';
import {
  interpolate,
  loadCompose,
  readDockerfile,
  readEnvFile,
  type ComposeService,
} from '../scripts/lib/compose.ts';
import { databaseUrl } from '../src/platform/db.ts';
import { waitFor } from './helpers/wait.ts';
import { startOtlpReceiver } from './helpers/otlp.ts';
import { TEST_KEYS } from './helpers/keys.ts';

const central = loadCompose('deploy/central/compose.yaml', 'deploy/central/.env.example');
const edge = loadCompose('deploy/edge/compose.yaml', 'deploy/edge/.env.example');
const docker = readDockerfile('Dockerfile');
const ours = (file: typeof central) =>
  Object.entries(file.services).filter(([, s]) => s.build !== undefined || s.image?.startsWith('dbupdate/'));
const targetOf = (s: ComposeService) => (s.image?.includes('/edge') ? 'edge' : 'central');
const STANDARD = new Set(['NODE_ENV', 'NODE_OPTIONS']);

describe('compose definitions', () => {
  it('give our services only settings the code accepts', () => {
    for (const [name, service] of [...ours(central), ...ours(edge)]) {
      const accepted = new Set(
        Object.keys((targetOf(service) === 'edge' ? EdgeConfigSchema : CentralConfigSchema).properties),
      );
      for (const key of Object.keys(service.environment ?? {})) {
        assert.ok(
          accepted.has(key) || STANDARD.has(key) || key.startsWith('OTEL_'),
          `${name}: unknown setting ${key}`,
        );
      }
    }
  });

  it('scale Central out with settings the code accepts, on services the override defines', () => {
    const scale = parse(
      interpolate(readFileSync('deploy/central/compose.scale.yaml', 'utf8'), {
        ...readEnvFile('deploy/central/.env.example'),
        REPLICATION_PASSWORD: 'a-replication-password',
      }),
    ) as { services: Record<string, ComposeService & { deploy?: { replicas: number | string } }> };
    const api = scale.services['central-db-update-api']!;
    const accepted = new Set(Object.keys(CentralConfigSchema.properties));
    for (const key of Object.keys(api.environment ?? {})) assert.ok(accepted.has(key), key);
    assert.equal(Number(api.deploy!.replicas), 2);
    // Each URL names a service of the override, and the read URL the replica, not the primary.
    for (const key of ['CENTRAL_READ_DATABASE_URL', 'RATE_LIMIT_REDIS_URL']) {
      const host = new URL(api.environment![key]!).hostname;
      assert.ok(scale.services[host], `${key} names ${host}, which the override does not define`);
    }
    assert.equal(new URL(api.environment!.CENTRAL_READ_DATABASE_URL!).hostname, 'central-postgres-replica');
    // Several replicas publish one loopback port each: CENTRAL_PORT becomes a range.
    assert.ok(central.services['central-db-update-api']!.ports!.every((p) => p.startsWith('127.0.0.1:')));
    // haproxy finds every replica through Docker's DNS, and keeps each device on one of them.
    const haproxy = readFileSync('deploy/central/haproxy.cfg', 'utf8');
    assert.match(haproxy, /nameserver dns 127\.0\.0\.11:53/);
    assert.match(haproxy, /hold valid 10s/);
    assert.match(haproxy, /balance hdr\(Authorization\)\n\s+hash-type consistent\n/);
    assert.match(haproxy, /server-template api 1-\d+ central-db-update-api:8080 .*resolvers docker/);
    assert.match(haproxy, /default_backend central_api/);
    assert.match(
      central.services['central-tls']!.command!.join(' '),
      /haproxy .*-f \/usr\/local\/etc\/haproxy\/haproxy\.cfg/,
    );
  });

  it('publish the port each service listens on, which its image exposes', () => {
    for (const [name, service] of [...ours(central), ...ours(edge)]) {
      if (!service.ports) continue;
      const port = Number(service.environment?.PORT);
      const target = docker[targetOf(service)]!;
      assert.ok(
        target.expose.includes(port),
        `${name}: image exposes ${target.expose}, service listens on ${port}`,
      );
      assert.ok(
        service.ports.some((p) => p.endsWith(`:${port}`)),
        `${name}: ports ${service.ports} do not publish ${port}`,
      );
    }
  });

  it('publish only TLS and Grafana on all interfaces; everything else on loopback or nowhere', () => {
    const open = new Set(['central/central-tls', 'central/grafana']);
    for (const [stack, file] of [
      ['central', central],
      ['edge', edge],
    ] as const) {
      for (const [name, service] of Object.entries(file.services)) {
        for (const port of service.ports ?? []) {
          const loopback = port.startsWith('127.0.0.1:');
          assert.ok(
            loopback || open.has(`${stack}/${name}`),
            `${stack}/${name} publishes ${port} on all interfaces`,
          );
        }
      }
    }
  });

  it('build runtime images as a non-root user with a health check', async () => {
    const text = await import('node:fs/promises').then((fs) => fs.readFile('Dockerfile', 'utf8'));
    assert.match(text, /^USER node$/m);
    for (const target of ['central', 'edge']) {
      assert.match(docker[target]!.healthcheck.join(' '), /\/healthz/);
      // The script itself, so its shebang (the one copy of its V8 flag) applies in the image too.
      assert.deepEqual(docker[target]!.entrypoint, ['/app/bin/dbupdate.ts']);
      // The young generation is each service's own (docs/scaling.md, Memory); the shebang must
      // not set it, since a command-line flag would override NODE_OPTIONS.
      const semi = /--max-semi-space-size=(\d+)/.exec(docker[target]!.env.NODE_OPTIONS ?? '');
      assert.equal(semi?.[1], target === 'central' ? '8' : '2', `${target} NODE_OPTIONS`);
      assert.ok(docker[target]!.env.NODE_COMPILE_CACHE);
    }
    // The compile cache is filled after the last source is in place.
    const warm = text.indexOf('RUN node scripts/warm-compile-cache.ts');
    assert.ok(warm > text.indexOf('COPY src ') && warm > text.indexOf('COPY bin '), 'warm after COPY');
    assert.ok(warm < text.indexOf('USER node'), 'warm as the build user, before USER');
    const shebang = (
      await import('node:fs/promises').then((fs) => fs.readFile('bin/dbupdate.ts', 'utf8'))
    ).split('\n', 1)[0]!;
    assert.doesNotMatch(shebang, /semi-space/, "the shebang would override each image's NODE_OPTIONS");
    // Commands run in a container go through the shebang too, or they would miss the cache.
    for (const file of ['README.md', 'deploy/simulate-fleet.sh']) {
      const doc = await import('node:fs/promises').then((fs) => fs.readFile(file, 'utf8'));
      assert.doesNotMatch(doc, /exec .*node bin\/dbupdate\.ts/, file);
    }
  });
});

describe('compose services, started natively', () => {
  const names = {
    central: `t_compose_central_${process.pid}`,
    edge: `t_compose_edge_${process.pid}`,
    reader: `t_compose_reader_${process.pid}`,
    owner: `t_compose_owner_${process.pid}`,
  };
  const withAdmin = async (db: string, work: (client: pg.Client) => Promise<unknown>) => {
    const client = new pg.Client({ connectionString: databaseUrl(process.env.TEST_DATABASE_URL!, db) });
    await client.connect();
    try {
      await work(client);
    } finally {
      await client.end();
    }
  };
  const running: ChildProcess[] = [];
  const outputs: (() => string)[] = [];
  const admin = new URL(process.env.TEST_DATABASE_URL!);
  let compileCache = '';

  before(async () => {
    // The image's compile cache, filled as its build fills it.
    compileCache = await mkdtemp(join(tmpdir(), 'dbupdate-compile-'));
    const warm = spawnSync(process.execPath, ['scripts/warm-compile-cache.ts'], {
      env: {
        ...process.env,
        NODE_OPTIONS: docker.central!.env.NODE_OPTIONS,
        NODE_COMPILE_CACHE: compileCache,
      },
      encoding: 'utf8',
    });
    assert.equal(warm.status, 0, warm.stderr);
    // That the entry point then reads every module from it is checked by the cache's own
    // files in scripts/rehearse-image.ts (CI); a long-running service also adds entries of
    // lazily loaded JavaScript dependencies, which the warmer does not load.
    assert.ok(cacheEntries(compileCache).size > 40, 'the build step filled the cache');
    const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await client.connect();
    for (const db of [names.central, names.edge]) await client.query(`CREATE DATABASE "${db}"`);
    await client.end();
  });
  after(async () => {
    for (const child of running) child.kill('SIGKILL');
    await rm(compileCache, { recursive: true, force: true });
    const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await client.connect();
    for (const db of [names.central, names.edge])
      await client.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
    await client.query(`DROP ROLE IF EXISTS ${names.reader}`);
    await client.query(`DROP ROLE IF EXISTS ${names.owner}`);
    await client.end();
  });

  /** The container's environment with hosts of the stack mapped to this machine. */
  function nativeEnv(
    service: ComposeService,
    target: string,
    map: Record<string, string>,
  ): Record<string, string> {
    // An empty `KEY: ${VAR:-}` is an empty string in Compose (YAML reads it as null).
    const env: Record<string, string> = Object.fromEntries(
      Object.entries({ ...docker[target]!.env, ...service.environment }).map(([k, v]) => [k, v ?? '']),
    );
    for (const [key, value] of Object.entries(env)) {
      if (!/^(postgres|https?):\/\//.test(value)) continue;
      const url = new URL(value);
      if (url.hostname === 'central-postgres' || url.hostname === 'edge-postgres') {
        const db = url.hostname === 'central-postgres' ? names.central : names.edge;
        env[key] = databaseUrl(process.env.TEST_DATABASE_URL!, db);
      } else if (map[url.host]) {
        env[key] = map[url.host]!;
      }
    }
    delete env.SEQ_URL; // no Seq here; the setting itself is checked above
    if (env.NODE_COMPILE_CACHE) env.NODE_COMPILE_CACHE = compileCache;
    return { ...env, ...map };
  }

  function start(
    argv: string[],
    env: Record<string, string>,
  ): { child: ChildProcess; exit: Promise<number | null>; output: () => string; stdout: () => string } {
    // The image's /app is this checkout; its `node` is the one running the tests.
    const [program, ...args] = argv.map((a) => a.replace(/^\/app\//, ''));
    const child = spawn(program === 'node' ? process.execPath : program!, args, {
      env: { PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let stdout = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      stdout += c.toString();
    });
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    running.push(child);
    outputs.push(() => out);
    return { child, exit: new Promise((r) => child.on('exit', r)), output: () => out, stdout: () => stdout };
  }
  const commandOf = (service: ComposeService, target: string) => [
    ...docker[target]!.entrypoint,
    ...(service.command ?? docker[target]!.cmd),
  ];

  it('migrates, seeds the demo profile once, prunes on schedule, serves Central, enrolls a device and syncs an Edge, traced', async () => {
    const otlp = await startOtlpReceiver();
    after(() => otlp.close());
    const centralPort = await freePort();
    const edgePort = await freePort();
    const local = { HOST: '127.0.0.1' };

    // The one-shots: migrations at every start; fake data only in the opt-in demo profile.
    for (const [name, again] of [
      ['central-migrate', /0 applied/],
      ['central-demo-seed', /not seeding/],
    ] as const) {
      const svc = central.services[name]!;
      assert.deepEqual(svc.profiles, name === 'central-demo-seed' ? ['demo'] : undefined, name);
      for (const attempt of [1, 2]) {
        const run = start(commandOf(svc, 'central'), nativeEnv(svc, 'central', {}));
        assert.equal(await run.exit, 0, `${name} run ${attempt}: ${run.output()}`);
        if (attempt === 2) assert.match(run.output(), again);
      }
    }
    // Housekeeping prunes at start, keeps running for the next day, and stops on SIGTERM.
    const keeper = central.services['central-housekeeping']!;
    const prune = start(commandOf(keeper, 'central'), nativeEnv(keeper, 'central', {}));
    await waitFor(
      async () => prune.stdout(),
      (out) => /^\{"cutoff"/m.test(out),
      20_000,
    );
    assert.equal(prune.child.exitCode, null, 'still running after the first prune');
    prune.child.kill('SIGTERM');
    assert.equal(await prune.exit, 0, prune.output());

    const apiSvc = central.services['central-db-update-api']!;
    const apiEnv = {
      ...nativeEnv(apiSvc, 'central', { 'otel-collector:4318': otlp.url }),
      ...local,
      PORT: String(centralPort),
      MANIFEST_SIGNING_KEY: TEST_KEYS.privateKey, // as pasted from `dbupdate central keygen`
      ADMIN_TOKEN: 'an-operator-made-admin-token-0123456789', // .env.example's placeholder is refused
    };
    const api = start(commandOf(apiSvc, 'central'), apiEnv);
    const health = docker.central!.healthcheck;
    await waitFor(
      async () => (await start(health, apiEnv).exit) === 0,
      (ok) => ok,
      20_000,
    );

    const mac = readEnvFile('deploy/edge/.env.example').DEVICE_MAC!;
    // As the README runs it: `exec … bin/dbupdate.ts …`, which starts node with the shebang's flags.
    const enroll = start([...docker.central!.entrypoint, 'central', 'enroll', '--mac', mac], apiEnv);
    assert.equal(await enroll.exit, 0, enroll.output());
    const token = enroll.stdout().trim().split('\n').at(-1)!;

    // The edge PostgreSQL's first start (initdb/): the service's owner role and the reader role,
    // under names of this run's.
    const edgeDb = edge.services['edge-postgres']!;
    const ownerPassword = `owner-${process.pid}`;
    const ownerSql = (await readFile('deploy/edge/edge-role.sql', 'utf8'))
      .replace(":'edge_password'", `'${ownerPassword}'`)
      .replace('ALTER DATABASE edge OWNER', `ALTER DATABASE "${names.edge}" OWNER`)
      .replaceAll('dbupdate_edge', names.owner);
    await withAdmin(names.edge, (client) => client.query(ownerSql));
    const readerSql = (await readFile('deploy/edge/reader-role.sql', 'utf8'))
      .replace(":'reader_password'", `'${edgeDb.environment!.EDGE_READER_PASSWORD}'`)
      .replaceAll('dbupdate_reader', names.reader);
    await withAdmin(names.edge, (client) => client.query(readerSql));

    const edgeSvc = edge.services['dbupdate-service']!;
    const edgeEnv: Record<string, string> = {
      ...nativeEnv(edgeSvc, 'edge', { 'central.example.com': `http://127.0.0.1:${centralPort}` }),
      ...local,
      PORT: String(edgePort),
      DEVICE_TOKEN: token,
      MANIFEST_PUBLIC_KEYS: TEST_KEYS.publicKey,
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      EDGE_READER_ROLE: names.reader,
    };
    // As the stack connects: the tables' owner, no superuser.
    assert.match(edgeSvc.environment!.EDGE_DATABASE_URL!, /^postgres:\/\/dbupdate_edge:/);
    const ownerUrl = new URL(edgeEnv.EDGE_DATABASE_URL!);
    [ownerUrl.username, ownerUrl.password] = [names.owner, ownerPassword];
    edgeEnv.EDGE_DATABASE_URL = ownerUrl.toString();
    delete edgeEnv['central.example.com'];
    const edgeProc = start(commandOf(edgeSvc, 'edge'), edgeEnv);
    const status = await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${edgePort}/status`).catch(() => undefined);
        return res?.ok
          ? ((await res.json()) as { loadMode: string; recent: { status: string }[] })
          : undefined;
      },
      (s) => s?.recent.some((r) => r.status === 'success') ?? false,
      30_000,
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}; the edge said:\n${edgeProc.output().split('\n').join('\n').slice(-3000)}`,
      );
    });
    assert.equal(status?.loadMode, 'deferred', 'the owner role loads deltas with its keys deferred');
    assert.equal(await start(docker.edge!.healthcheck, edgeEnv).exit, 0);

    // The stack's admin token opens the dashboard's data; the page itself is served.
    const centralBase = `http://127.0.0.1:${centralPort}`;
    const hourly = await fetch(`${centralBase}/api/admin/requests/hourly?hours=1`, {
      headers: { authorization: `Bearer ${(apiEnv as Record<string, string>).ADMIN_TOKEN}` },
    });
    assert.equal(hourly.status, 200);
    const served = ((await hourly.json()) as { buckets: { requests: Record<string, number> }[] }).buckets.at(
      -1,
    )!;
    assert.ok((served.requests.served ?? 0) >= 1, JSON.stringify(served));
    const page = await fetch(`${centralBase}/dashboard`);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);

    // Graceful stop on SIGTERM, as `docker stop` sends it.
    edgeProc.child.kill('SIGTERM');
    api.child.kill('SIGTERM');
    assert.equal(await edgeProc.exit, 0, edgeProc.output());
    assert.equal(await api.exit, 0, api.output());
    void admin;

    // Both processes exported their spans over OTLP at shutdown, as OTEL_* told them,
    // and Central's request span sits in the edge's trace, under its HTTP client span.
    assert.ok(otlp.contentTypes.every((t) => t === 'application/x-protobuf'));
    const spans = otlp.spans;
    const request = spans.find((s) => s.service === 'central-db-update-api' && s.name === 'sync.request');
    assert.ok(
      request,
      `central spans: ${spans.filter((s) => s.service === 'central-db-update-api').map((s) => s.name)}`,
    );
    const server = spans.find((s) => s.spanId === request.parentSpanId)!;
    const client = spans.find((s) => s.spanId === server.parentSpanId)!;
    assert.equal(client.service, 'dbupdate-service');
    const pull = spans.find((s) => s.spanId === client.parentSpanId)!;
    assert.equal(pull.name, 'sync.pull');
    const sync = spans.find((s) => s.spanId === pull.parentSpanId)!;
    assert.equal(sync.name, 'sync');
    assert.equal(new Set([request, server, client, pull, sync].map((s) => s.traceId)).size, 1);
    assert.ok(spans.some((s) => s.service === 'central-db-update-api' && s.name.startsWith('pg.query')));
    assert.ok(spans.some((s) => s.service === 'dbupdate-service' && s.name === 'sync.load.table'));
    const load = spans.find((s) => s.name === 'sync.load' && s.traceId === sync.traceId)!;
    assert.match(load.attributes['dbupdate.manifest_id'] ?? '', /^[0-9A-Z]{26}$/);
    assert.equal(request.attributes['dbupdate.manifest_id'], load.attributes['dbupdate.manifest_id']);
  });
});
