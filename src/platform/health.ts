/** Liveness (the process answers) and readiness (database reachable and migrated). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Pool } from './db.ts';
import { AppError } from './errors.ts';
import { currentMigration } from './migrate.ts';

export interface HealthOptions {
  pool: Pool;
  expectedMigration: number;
}

const Probe = Type.Object({ status: Type.String(), migration: Type.Optional(Type.Integer()) });

export const healthRoutes: FastifyPluginAsyncTypebox<HealthOptions> = async (app, opts) => {
  app.get(
    '/healthz',
    { schema: { tags: ['probes'], response: { 200: Probe } }, logLevel: 'warn' },
    async () => ({ status: 'ok' }),
  );
  app.get(
    '/readyz',
    { schema: { tags: ['probes'], response: { 200: Probe } }, logLevel: 'warn' },
    async () => {
      let migration: number;
      try {
        migration = await currentMigration(opts.pool);
      } catch (err) {
        throw new AppError('NOT_READY', 'database unreachable', { cause: err });
      }
      if (migration < opts.expectedMigration) {
        throw new AppError(
          'NOT_READY',
          `database at migration ${migration}, code needs ${opts.expectedMigration}`,
        );
      }
      return { status: 'ready', migration };
    },
  );
};
