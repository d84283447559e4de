/**
 * /api/admin/release…: the release's state, and pause, resume, approve and reject over HTTP,
 * as the CLI does them (control.ts). Registered inside the admin plugin, behind its token
 * check; every change is recorded with its actor (the `dbupdate-actor` header and the caller).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ErrorBody, STORABLE_TEXT } from '../../contract/wire.ts';
import { actorOf } from '../fleet/admin-devices.ts';
import { common } from '../fleet/admin-wire.ts';
import type { Pool } from '../../platform/db.ts';
import { releaseStatus } from './control.ts';
import type { ReleaseGate } from './gate.ts';
import { PreviewBody, ReleaseChangeBody, ReleaseState, releaseToWire } from './wire.ts';
import { previewRelease, type KnownPieces } from './preview.ts';
import { DATA_MODEL, type DataModel } from '../../contract/data-model.ts';

export interface ReleaseRouteOptions {
  pool: Pool;
  release: ReleaseGate;
  /** For the preview: the data model served, and the pieces Central still knows by content. */
  preview?: { model: DataModel; known: KnownPieces };
}

const errors = { 400: ErrorBody, 401: ErrorBody, 409: ErrorBody };

const ActionBody = Type.Object(
  { reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500, pattern: STORABLE_TEXT })) },
  { additionalProperties: false },
);

export const releaseRoutes: FastifyPluginAsyncTypebox<ReleaseRouteOptions> = async (app, opts) => {
  app.get(
    '/api/admin/release',
    {
      schema: {
        ...common,
        summary: 'The release: freeze, mass-change guard, devices held and the last decisions',
        response: { 200: ReleaseState, ...errors },
      },
    },
    async () => releaseToWire(await releaseStatus(opts.pool), opts.release.staging),
  );
  app.get(
    '/api/admin/release/preview',
    {
      schema: {
        ...common,
        summary:
          'What is pending now: devices reached, and per table rows added, changed and removed and bytes that travel',
        response: { 200: PreviewBody, ...errors },
      },
    },
    async () => previewRelease(opts.pool, opts.preview?.model ?? DATA_MODEL, opts.preview?.known),
  );

  for (const action of ['pause', 'resume', 'approve', 'reject'] as const) {
    app.post(
      `/api/admin/release/${action}`,
      {
        schema: {
          ...common,
          summary: SUMMARIES[action],
          body: ActionBody,
          response: { 200: ReleaseChangeBody, ...errors },
        },
        // One call, with or without a body: `curl -X POST …/pause` is enough.
        preValidation: async (request) => {
          request.body ??= {};
        },
      },
      async (request) => opts.release.change(action, actorOf(request), request.body.reason ?? null),
    );
  }
};

const SUMMARIES = {
  pause:
    'Freeze: every device that holds data keeps it until resume (a device that holds nothing still gets its first sync)',
  resume: 'End the freeze: devices take what changed at their next sync',
  approve: 'Let the change the mass-change guard holds go to the fleet',
  reject: 'Keep the fleet on its data until Central’s data changes again',
};
