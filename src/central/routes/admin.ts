/**
 * /api/admin/*: read-only views of the audit trail, behind ADMIN_TOKEN. Device
 * credentials never open these routes; without ADMIN_TOKEN the admin API is closed.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { normalizeMac } from '../../contract/mac.ts';
import { ErrorBody } from '../../contract/wire.ts';
import type { Pool } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { deviceActivity, requestCountsByStatus } from '../repo/admin.ts';
import { bearerToken } from '../services/credentials.ts';

export interface AdminOptions {
  pool: Pool;
  adminToken: string | undefined;
}

const digest = (text: string) => createHash('sha256').update(text).digest();
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
const Summary = Type.Object({ hours: Type.Integer(), byStatus: Type.Record(Type.String(), Type.Integer()) });
const Activity = Type.Object({
  mac: Type.String(),
  requests: Type.Array(
    Type.Object({
      requestedAt: Type.String(),
      status: Type.String(),
      manifestId: Nullable(Type.String()),
      errorCode: Nullable(Type.String()),
      durationMs: Nullable(Type.Integer()),
    }),
  ),
  acks: Type.Array(
    Type.Object({
      manifestId: Type.String(),
      completedAt: Type.String(),
      result: Type.String(),
      durationMs: Type.Integer(),
      error: Nullable(Type.String()),
    }),
  ),
});

export const adminRoutes: FastifyPluginAsyncTypebox<AdminOptions> = async (app, opts) => {
  const expected = opts.adminToken === undefined ? undefined : digest(opts.adminToken);
  app.addHook('onRequest', async (request) => {
    const token = bearerToken(request.headers.authorization);
    if (!expected) throw new AppError('UNAUTHENTICATED', 'the admin API is closed: ADMIN_TOKEN is not set');
    if (!token || !timingSafeEqual(digest(token), expected)) {
      throw new AppError('UNAUTHENTICATED', 'admin token required');
    }
  });
  const errors = { 400: ErrorBody, 401: ErrorBody };

  app.get(
    '/api/admin/requests/summary',
    {
      schema: {
        tags: ['admin'],
        summary: 'Device-sync requests by status over the last hours',
        // Query strings arrive as text and we do not coerce types (request bodies stay strict).
        querystring: Type.Object({ hours: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,3}$' })) }),
        response: { 200: Summary, ...errors },
      },
    },
    async (request) => {
      const hours = Math.min(Number(request.query.hours ?? 24), 24 * 90);
      return { hours, byStatus: await requestCountsByStatus(opts.pool, hours) };
    },
  );

  app.get(
    '/api/admin/devices/:mac',
    {
      schema: {
        tags: ['admin'],
        summary: "A device's recent requests and acknowledgements",
        params: Type.Object({ mac: Type.String({ maxLength: 64 }) }),
        querystring: Type.Object({ limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,2}$' })) }),
        response: { 200: Activity, ...errors },
      },
    },
    async (request) => {
      const mac = normalizeMac(request.params.mac);
      if (!mac) throw new AppError('INVALID_MAC', `not a MAC address: ${JSON.stringify(request.params.mac)}`);
      const activity = await deviceActivity(opts.pool, mac, Math.min(Number(request.query.limit ?? 50), 500));
      return {
        mac,
        requests: activity.requests.map((r) => ({
          requestedAt: r.requested_at.toISOString(),
          status: r.status,
          manifestId: r.manifest_id,
          errorCode: r.error_code,
          durationMs: r.duration_ms,
        })),
        acks: activity.acks.map((a) => ({
          manifestId: a.manifest_id,
          completedAt: a.completed_at.toISOString(),
          result: a.result,
          durationMs: a.duration_ms,
          error: a.error_text,
        })),
      };
    },
  );
};
