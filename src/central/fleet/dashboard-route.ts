/**
 * GET /dashboard: the fleet dashboard, a static page whose data comes from the admin
 * API with the admin token the user enters; the page itself holds no data. Files are
 * read once at start and served with a strict content security policy.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';

const here = (name: string) => new URL(`../dashboard/${name}`, import.meta.url);

export const dashboardRoutes: FastifyPluginAsync = async (app) => {
  // The package exports no path to its browser bundle; it sits next to the CommonJS entry.
  const chartJs = join(dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.min.js');
  const files = new Map<string, { type: string; body: Buffer }>([
    ['/dashboard', { type: 'text/html; charset=utf-8', body: await readFile(here('index.html')) }],
    ['/dashboard/app.js', { type: 'text/javascript; charset=utf-8', body: await readFile(here('app.js')) }],
    ['/dashboard/app.css', { type: 'text/css; charset=utf-8', body: await readFile(here('app.css')) }],
    [
      '/dashboard/vendor/chart.umd.min.js',
      { type: 'text/javascript; charset=utf-8', body: await readFile(chartJs) },
    ],
  ]);
  for (const [path, file] of files) {
    app.get(path, { schema: { hide: true }, logLevel: 'warn' }, async (_request, reply) =>
      reply
        .header('content-type', file.type)
        .header(
          'content-security-policy',
          "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        )
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'no-cache')
        .send(file.body),
    );
  }
  app.get('/dashboard/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/dashboard'));
};
