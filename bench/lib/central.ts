/** What the benches share: the one-location scope they measure, and Central started as the image starts it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { DEFAULT_SHAPE, seedCentral } from '../../src/central/fleet/seed.ts';
import type { Pool } from '../../src/platform/db.ts';
import { freePort } from '../../src/platform/embedded.ts';
import { imageNodeArgs, imageNodeEnv } from '../image.ts';

/** One company, one location and its ten groups, `users` users in two groups each (the previous data replaced). */
export function seedOneLocation(pool: Pool, users: number): ReturnType<typeof seedCentral> {
  return seedCentral(
    pool,
    {
      ...DEFAULT_SHAPE,
      companies: 1,
      locationsPerCompany: 1,
      groupsPerCompany: 10,
      groupsPerLocation: 10,
      usersPerCompany: users,
      groupsPerUser: 2,
    },
    { reset: true },
  );
}

/** `central serve` on a free loopback port, as the image runs it; resolves once it is ready. */
export async function startCentralProcess(
  env: Record<string, string>,
): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, [...imageNodeArgs(), 'central', 'serve'], {
    env: { ...process.env, ...imageNodeEnv(), ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: 'ignore',
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 400; i++) {
    if ((await fetch(`${url}/readyz`).catch(() => undefined))?.ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, url };
}
