/**
 * /api/admin/devices…: the fleet list a page at a time, and the lifecycle operations of
 * the CLI (create and enrol, disable, enable, revoke) over HTTP. Registered inside the
 * admin plugin, behind its token check. Every change is recorded with its actor: the
 * `dbupdate-actor` header (a person or a tool's name) and the caller's address.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { ErrorBody, STORABLE_TEXT } from '../../contract/wire.ts';
import { adminEventsOf, devicesByVersion, listDevices } from './repo/device-admin.ts';
import { changeDevice, setDeviceCohort } from './devices.ts';
import { enrollDevices } from './enroll.ts';
import { requireMac } from '../model.ts';
import {
  DeviceEvents,
  DevicePage,
  DeviceVersions,
  Hours,
  Limit,
  Mac,
  MacParams,
  common,
  devicePageToWire,
  eventsToWire,
  hoursOf,
  limitOf,
  versionsToWire,
  type AdminOptions,
} from './admin-wire.ts';

const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody };

export function actorOf(request: FastifyRequest): string {
  const named = request.headers['dbupdate-actor'];
  const who = typeof named === 'string' ? named.replace(/[^\x20-\x7e]/g, '?').slice(0, 100) : 'admin';
  return `api:${who}@${request.ip}`;
}

const Change = Type.Object({
  mac: Type.String(),
  deviceId: Type.String({ format: 'uuid' }),
  action: Type.String(),
  changed: Type.Boolean({ description: 'false when the device already was in that state' }),
  wipe: Type.Optional(Type.Boolean({ description: 'a wipe was asked of the device' })),
});

const EnrolBody = Type.Object(
  {
    devices: Type.Array(
      Type.Object(
        {
          mac: Mac,
          locationId: Type.Optional(
            Type.String({ format: 'uuid', description: 'creates the device if new' }),
          ),
          name: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: STORABLE_TEXT })),
          cohort: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' })),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 10_000 },
    ),
    rotate: Type.Optional(
      Type.Boolean({ description: 'also re-key devices whose credential works (default: keep them)' }),
    ),
    overlapSeconds: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 30 * 86_400,
        description: 'a re-keyed credential keeps working this long',
      }),
    ),
  },
  { additionalProperties: false },
);

const EnrolResponse = Type.Object({
  enrolled: Type.Array(
    Type.Object({
      mac: Type.String(),
      deviceId: Type.String(),
      credential: Type.String({ description: 'shown once; stored only as its hash' }),
      created: Type.Boolean(),
      rotated: Type.Boolean({ description: 'a working credential was replaced' }),
    }),
  ),
  kept: Type.Array(Type.Object({ mac: Type.String(), deviceId: Type.String() })),
});

/** The fleet's devices: read (list, versions, events) and changed (enrol, disable, enable, revoke). */
export const deviceLifecycle: FastifyPluginAsyncTypebox<AdminOptions> = async (app, opts) => {
  await app.register(deviceReads, opts);
  await app.register(deviceChanges, opts);
  await app.register(deviceCohorts, opts);
};

const deviceReads: FastifyPluginAsyncTypebox<AdminOptions> = async (app, opts) => {
  app.get(
    '/api/admin/devices',
    {
      schema: {
        ...common,
        summary: 'The fleet, by MAC, a page at a time (keyset paging with `after`)',
        querystring: Type.Object({
          after: Type.Optional(Mac),
          limit: Type.Optional(Limit),
          staleHours: Type.Optional(Hours),
        }),
        response: { 200: DevicePage, ...errors },
      },
    },
    async (request) => {
      const { after, staleHours } = request.query;
      const limit = limitOf(request.query.limit, 100);
      const page = await listDevices(opts.pool, {
        ...(after === undefined ? {} : { afterMac: requireMac(after) }),
        ...(staleHours === undefined ? {} : { staleHours: hoursOf(staleHours, 24) }),
        limit,
      });
      return devicePageToWire(page, limit);
    },
  );

  app.get(
    '/api/admin/devices/versions',
    {
      schema: {
        ...common,
        summary:
          'Enabled devices by the schema and software versions of their last request (a rolling upgrade)',
        response: { 200: DeviceVersions, ...errors },
      },
    },
    async () => versionsToWire(opts.servedVersions, await devicesByVersion(opts.pool)),
  );

  app.get(
    '/api/admin/devices/:mac/events',
    {
      schema: {
        ...common,
        summary: 'Who changed this device and when (create, enroll, disable, enable, revoke)',
        params: MacParams,
        querystring: Type.Object({ limit: Type.Optional(Limit) }),
        response: { 200: DeviceEvents, ...errors },
      },
    },
    async (request) => {
      const mac = requireMac(request.params.mac);
      return eventsToWire(mac, await adminEventsOf(opts.pool, mac, limitOf(request.query.limit, 50)));
    },
  );
};

const deviceChanges: FastifyPluginAsyncTypebox<AdminOptions> = async (app, opts) => {
  app.post(
    '/api/admin/devices/enroll',
    {
      schema: {
        ...common,
        summary: 'Create (with a location) and enrol devices, all or none; credentials are shown once',
        body: EnrolBody,
        response: { 200: EnrolResponse, ...errors },
      },
    },
    async (request) => {
      const result = await enrollDevices(opts.pool, request.body.devices, {
        actor: actorOf(request),
        rotate: request.body.rotate ?? false,
        overlapSeconds: request.body.overlapSeconds ?? 0,
      });
      return {
        enrolled: result.enrolled.map(({ secret, ...e }) => ({ ...e, credential: secret })),
        kept: result.kept,
      };
    },
  );

  for (const action of ['disable', 'enable', 'revoke'] as const) {
    app.post(
      `/api/admin/devices/:mac/${action}`,
      {
        schema: {
          ...common,
          summary: {
            disable: 'Refuse the device data (its credential stays)',
            enable: 'Serve the device again',
            revoke: "The device's credential stops working at once, on every Central",
          }[action],
          params: MacParams,
          querystring: Type.Object({
            wipe: Type.Optional(
              Type.Literal('true', {
                description:
                  'disable, revoke: the device empties its tables at its next request (a signed wipe, docs/releases.md)',
              }),
            ),
          }),
          response: { 200: Change, ...errors },
        },
      },
      async (request) =>
        changeDevice(opts.pool, request.params.mac, action, actorOf(request), request.query.wipe === 'true'),
    );
  }
};

/** A device's cohort (docs/releases.md): the canary cohort gets a rollout first. */
const deviceCohorts: FastifyPluginAsyncTypebox<AdminOptions> = async (app, opts) => {
  app.post(
    '/api/admin/devices/:mac/cohort',
    {
      schema: {
        ...common,
        summary: 'Put the device in a cohort (null: none); the canary cohort gets a rollout first',
        params: MacParams,
        body: Type.Object(
          { cohort: Type.Union([Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }), Type.Null()]) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            mac: Type.String(),
            deviceId: Type.String(),
            cohort: Type.Union([Type.String(), Type.Null()]),
            changed: Type.Boolean(),
          }),
          ...errors,
        },
      },
    },
    async (request) => setDeviceCohort(opts.pool, request.params.mac, request.body.cohort, actorOf(request)),
  );
};
