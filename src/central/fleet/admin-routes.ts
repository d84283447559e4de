/**
 * /api/admin/*: read-only views of the audit trail for the dashboard, behind
 * ADMIN_TOKEN. Device credentials never open these routes; without ADMIN_TOKEN the
 * admin API is closed.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ErrorBody } from '../../contract/wire.ts';
import { AppError } from '../../platform/errors.ts';
import {
  deviceActivity,
  failuresByCode,
  hourlyCounts,
  requestCountsByStatus,
  rowDeltas,
} from './repo/admin.ts';
import { listDevices } from './repo/device-admin.ts';
import { deviceLifecycle } from './admin-devices.ts';
import { releaseRoutes } from '../release/routes.ts';
import { bearerToken, tokenMatches } from '../../platform/http.ts';
import { requireMac } from '../model.ts';
import {
  Activity,
  Failures,
  Hourly,
  Hours,
  Limit,
  Mac,
  MacParams,
  common,
  hoursOf,
  limitOf,
  RowDeltas,
  StaleDevices,
  Summary,
  activityToWire,
  deltasToWire,
  hourlyToWire,
  devicePageToWire,
  type AdminOptions,
} from './admin-wire.ts';

const errors = { 400: ErrorBody, 401: ErrorBody };

export const adminRoutes: FastifyPluginAsyncTypebox<AdminOptions> = async (app, opts) => {
  app.addHook('onRequest', async (request) => {
    const token = bearerToken(request.headers.authorization);
    if (opts.adminToken === undefined)
      throw new AppError('UNAUTHENTICATED', 'the admin API is closed: ADMIN_TOKEN is not set');
    if (!token)
      throw new AppError('UNAUTHENTICATED', 'admin token required: Authorization: Bearer <ADMIN_TOKEN>');
    if (!tokenMatches(opts.adminToken, token)) {
      throw new AppError('UNAUTHENTICATED', 'wrong admin token: it is not the ADMIN_TOKEN Central runs with');
    }
  });
  await app.register(fleetViews, opts);
  await app.register(failureViews, opts);
  await app.register(deviceViews, opts);
  await app.register(deviceLifecycle, opts);
  await app.register(releaseRoutes, opts);
};

/** What fails across the fleet, by error code. */
const failureViews: FastifyPluginAsyncTypebox<AdminOptions> = async (app, opts) => {
  app.get(
    '/api/admin/requests/failures',
    {
      schema: {
        ...common,
        summary: "Failures by error code over the last hours: Central's answers and the devices' own reports",
        querystring: Type.Object({ hours: Type.Optional(Hours) }),
        response: { 200: Failures, ...errors },
      },
    },
    async (request) => {
      const hours = hoursOf(request.query.hours, 48);
      return { hours, failures: await failuresByCode(opts.pool, hours) };
    },
  );
};

/** The whole fleet: requests by status, per hour, and the stale devices. */
const fleetViews: FastifyPluginAsyncTypebox<AdminOptions> = async (app, opts) => {
  app.get(
    '/api/admin/requests/summary',
    {
      schema: {
        ...common,
        summary: 'Device-sync requests by status over the last hours',
        querystring: Type.Object({ hours: Type.Optional(Hours) }),
        response: { 200: Summary, ...errors },
      },
    },
    async (request) => {
      const hours = hoursOf(request.query.hours, 24);
      return { hours, byStatus: await requestCountsByStatus(opts.pool, hours) };
    },
  );

  app.get(
    '/api/admin/requests/hourly',
    {
      schema: {
        ...common,
        summary: 'Requests by status and acknowledgements by result, per hour',
        querystring: Type.Object({ hours: Type.Optional(Hours) }),
        response: { 200: Hourly, ...errors },
      },
    },
    async (request) => {
      const hours = hoursOf(request.query.hours, 48);
      return hourlyToWire(hours, await hourlyCounts(opts.pool, hours));
    },
  );

  app.get(
    '/api/admin/devices/stale',
    {
      schema: {
        ...common,
        summary: 'Enabled devices without a successful acknowledgement in the last N hours, a page at a time',
        querystring: Type.Object({
          hours: Type.Optional(Hours),
          limit: Type.Optional(Limit),
          after: Type.Optional(Mac),
        }),
        response: { 200: StaleDevices, ...errors },
      },
    },
    async (request) => {
      const hours = hoursOf(request.query.hours, 24);
      const limit = limitOf(request.query.limit, 200);
      const after = request.query.after === undefined ? undefined : requireMac(request.query.after);
      const page = await listDevices(opts.pool, { staleHours: hours, afterMac: after, limit });
      return { hours, ...devicePageToWire(page, limit) };
    },
  );
};

/** One device: its recent activity and the row counts of its manifests. */
const deviceViews: FastifyPluginAsyncTypebox<AdminOptions> = async (app, opts) => {
  app.get(
    '/api/admin/devices/:mac/row-deltas',
    {
      schema: {
        ...common,
        summary:
          "Row counts by table of a device's recent manifests, with the change between consecutive ones",
        params: MacParams,
        querystring: Type.Object({ limit: Type.Optional(Limit) }),
        response: { 200: RowDeltas, ...errors },
      },
    },
    async (request) => {
      const mac = requireMac(request.params.mac);
      return deltasToWire(mac, await rowDeltas(opts.pool, mac, limitOf(request.query.limit, 30)));
    },
  );

  app.get(
    '/api/admin/devices/:mac',
    {
      schema: {
        ...common,
        summary: "A device's recent requests, manifests, acknowledgements and errors",
        params: MacParams,
        querystring: Type.Object({ limit: Type.Optional(Limit) }),
        response: { 200: Activity, ...errors },
      },
    },
    async (request) => {
      const mac = requireMac(request.params.mac);
      return activityToWire(mac, await deviceActivity(opts.pool, mac, limitOf(request.query.limit, 50)));
    },
  );
};
