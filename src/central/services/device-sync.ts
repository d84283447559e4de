/**
 * The device-sync request from start to finish: audit row first, then device and
 * credential, then the snapshot in one REPEATABLE READ READ ONLY transaction, the
 * manifest written before the first byte is sent, and the audit row finished with
 * the outcome whatever happens to the response.
 */
import { ulid } from 'ulid';
import { globalSha256 } from '../../contract/canonical.ts';
import { normalizeMac } from '../../contract/mac.ts';
import { COPY_SESSION_SETTINGS_SQL } from '../../contract/tables.ts';
import {
  SCHEMA_VERSION,
  type Manifest,
  type ManifestSignature,
  type SyncRequestBody,
} from '../../contract/wire.ts';
import { signManifest, type SigningKey } from '../../contract/signing.ts';
import { withTransaction, type Pool, type PoolClient } from '../../platform/db.ts';
import { AppError, isDatabaseUnavailable, type ErrorCode } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import { startStep, step } from '../../platform/step.ts';
import { iterateInContext } from '../../platform/tracing.ts';
import { context, trace } from '@opentelemetry/api';
import { findDeviceByMac } from '../repo/devices.ts';
import { insertManifest } from '../repo/manifests.ts';
import { finishRequest, insertRequestStarted, type RequestOutcome } from '../repo/requests.ts';
import { companyDataVersion, setScope } from '../repo/snapshot.ts';
import { DigestCache } from './digest-cache.ts';
import { manifestToWire, type Device } from '../model.ts';
import type { CentralMetrics } from '../metrics.ts';
import { authenticateDevice, type CredentialVerifier } from './credentials.ts';
import { spendDeviceBudget, type Limits } from './limits.ts';
import { computeDigests, newStreamStats, snapshotBody } from './snapshot.ts';

export interface SyncDeps {
  /** Short queries: audit rows, manifests, credentials. */
  pool: Pool;
  /**
   * Long snapshot transactions only. Kept apart so a request holding a snapshot
   * connection can never wait on itself for an audit connection (pool deadlock).
   */
  snapshotPool: Pool;
  manifestTtlSeconds: number;
  metrics: CentralMetrics;
  signingKey: SigningKey;
  digestCache: DigestCache;
  credentials: CredentialVerifier;
  limits: Limits;
  /** false in the lab-only MAC-only mode. */
  requireCredential: boolean;
}

export interface SyncInput {
  body: SyncRequestBody;
  authorization: string | undefined;
  remoteAddr: string | null;
  log: Logger;
  /** Called once this request has its own audit row (refusals before that are audited by the route). */
  onAudited(): void;
  /** Takes a snapshot slot, once the device authenticated; throws OVERLOADED when none is free. */
  admit(): void;
}

export interface PreparedSync {
  manifest: Manifest;
  signature: ManifestSignature;
  body: AsyncIterable<Buffer>;
  /** Bytes of the body produced so far (only as fast as the client takes them). */
  readonly progress: { readonly bytes: number };
  /** Call once the response is closed; `sent` is true when every byte was handed to the client. */
  complete(sent: boolean, err?: Error): Promise<void>;
}

const STATUS_FOR: Partial<Record<ErrorCode, RequestOutcome['status']>> = {
  INVALID_MAC: 'invalid_input',
  INVALID_INPUT: 'invalid_input',
  DEVICE_NOT_FOUND: 'unknown_device',
  DEVICE_DISABLED: 'disabled',
  UNAUTHENTICATED: 'unauthenticated',
  RATE_LIMITED: 'rate_limited',
  OVERLOADED: 'overloaded',
};

/** The audit status of a request answered with an error code and HTTP status. */
export function auditStatus(code: string | undefined, httpStatus: number): RequestOutcome['status'] {
  const known = code === undefined ? undefined : STATUS_FOR[code as ErrorCode];
  if (known) return known;
  if (httpStatus === 401) return 'unauthenticated';
  return httpStatus < 500 ? 'invalid_input' : 'error';
}

export function outcomeForError(err: unknown): RequestOutcome {
  const appErr = err instanceof AppError ? err : undefined;
  return {
    status: auditStatus(appErr?.code, appErr?.status ?? 500),
    errorCode: appErr?.code ?? (isDatabaseUnavailable(err) ? 'DATABASE_UNAVAILABLE' : 'INTERNAL'),
    reason: (err as Error).message.slice(0, 1000),
  };
}

export async function prepareSync(deps: SyncDeps, input: SyncInput): Promise<PreparedSync> {
  const started = performance.now();
  const mac = normalizeMac(input.body.mac);
  if (!mac)
    throw new AppError('INVALID_MAC', `not a MAC address: ${JSON.stringify(input.body.mac.slice(0, 64))}`);
  const httpSpan = trace.getActiveSpan();
  const log = input.log.child({ device: mac });
  const requestId = await insertRequestStarted(deps.pool, { mac, remoteAddr: input.remoteAddr });
  input.onAudited();
  // Received → response sent: one step, finished with the audit row.
  const whole = startStep(log, 'sync.request', { requestId });
  const finish = async (outcome: RequestOutcome): Promise<void> => {
    const durationMs = Math.round(performance.now() - started);
    deps.metrics.snapshots.inc({ outcome: outcome.status });
    try {
      await finishRequest(deps.pool, requestId, { ...outcome, durationMs });
    } catch (err) {
      deps.metrics.auditFailures.inc();
      log.error({ err, event: 'audit.write', outcome: 'error', requestId }, 'could not finish the audit row');
    }
    whole.annotate({ status: outcome.status, bytesSent: outcome.bytesSent });
    const ok = outcome.status === 'served' || outcome.status === 'unchanged';
    whole.finish(
      ok
        ? undefined
        : Object.assign(new Error(outcome.reason ?? outcome.status), {
            code: outcome.errorCode ?? outcome.status,
          }),
    );
  };

  // The steps below are children of the request step.
  return context.with(whole.context, async (): Promise<PreparedSync> => {
    let client: PoolClient | undefined;
    let device: Device | undefined;
    try {
      // Who it is, on the short-query pool: a caller that cannot prove it holds no snapshot
      // slot or connection, and spends no device's budget nor the fleet's.
      device = await step(log, 'device.resolve', {}, async () => {
        const found = await findDeviceByMac(deps.pool, mac);
        if (!found) throw new AppError('DEVICE_NOT_FOUND', `no device with MAC ${mac}`);
        if (!found.enabled) throw new AppError('DEVICE_DISABLED', `device ${mac} is disabled`);
        if (deps.requireCredential)
          await authenticateDevice(deps.pool, deps.credentials, found.id, input.authorization);
        spendDeviceBudget(deps.limits, found.id, 'request');
        return found;
      });
      input.admit();
      client = await deps.snapshotPool.connect();
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query(COPY_SESSION_SETTINGS_SQL);
      const tx = client;
      const resolved = device;
      const tables = await step(log, 'scope.compute', { deviceId: resolved.id }, async (open) => {
        await setScope(tx, resolved);
        const cacheKey = DigestCache.key(resolved, await companyDataVersion(tx, resolved.companyId));
        const cached = deps.digestCache.get(cacheKey);
        deps.metrics.digestCache.inc({ result: cached ? 'hit' : 'miss' });
        open.annotate({ cache: cached ? 'hit' : 'miss' });
        if (cached) return cached;
        const digestStarted = performance.now();
        const digests = await computeDigests(tx);
        deps.metrics.digestSeconds.observe((performance.now() - digestStarted) / 1000);
        deps.digestCache.set(cacheKey, digests);
        return digests;
      });
      const global = globalSha256(tables);
      const { manifest, signature } = await step(log, 'manifest.create', {}, async (open) => {
        const generatedAt = new Date();
        const created = manifestToWire({
          manifestId: ulid(),
          generatedAt,
          expiresAt: new Date(generatedAt.getTime() + deps.manifestTtlSeconds * 1000),
          schemaVersion: SCHEMA_VERSION,
          tables,
          globalSha256: global,
          device: resolved,
          rowsIncluded: input.body.knownGlobalSha256 !== global,
        });
        open.annotate({ manifestId: created.manifestId, rowsIncluded: created.rowsIncluded });
        await withTransaction(deps.pool, 'BEGIN', (c) => insertManifest(c, created, mac));
        return { manifest: created, signature: signManifest(created, deps.signingKey) };
      });
      whole.annotate({ manifestId: manifest.manifestId });
      httpSpan?.setAttribute('dbupdate.manifest_id', manifest.manifestId);
      const mlog = log.child({ manifestId: manifest.manifestId });

      const stats = newStreamStats();
      let streamed = false;
      const send = startStep(mlog, 'snapshot.send', { rowsIncluded: manifest.rowsIncluded });
      const sendStarted = performance.now();
      const body = iterateInContext(
        send.context,
        (async function* () {
          yield* snapshotBody(tx, manifest, signature, stats, input.body.knownTables, mlog);
          streamed = true;
        })(),
      );
      return {
        manifest,
        signature,
        body,
        progress: stats,
        complete: async (sent, err) => {
          const ok = sent && streamed && !err;
          let broken: Error | undefined = ok ? undefined : (err ?? new Error('response aborted'));
          if (ok) await tx.query('COMMIT').catch((commitErr: Error) => (broken = commitErr));
          tx.release(broken);
          deps.metrics.bytesServed.inc(stats.bytes);
          if (ok && manifest.rowsIncluded)
            deps.metrics.rowsServed.inc(tables.reduce((n, t) => n + t.rowCount, 0));
          send.annotate({ bytes: stats.bytes });
          send.finish(ok ? undefined : (broken ?? new Error('response aborted')));
          const status = ok ? (manifest.rowsIncluded ? 'served' : 'unchanged') : err ? 'error' : 'aborted';
          deps.metrics.sendSeconds.observe({ outcome: status }, (performance.now() - sendStarted) / 1000);
          await finish({
            status,
            reason: ok ? null : (err?.message ?? 'client went away before the snapshot was sent'),
            errorCode: ok ? null : err ? 'SNAPSHOT_FAILED' : null,
            deviceId: resolved.id,
            manifestId: manifest.manifestId,
            bytesSent: stats.bytes,
            payloadSha256: ok ? stats.payload.digest('hex') : null,
          });
        },
      };
    } catch (err) {
      if (client) {
        const c = client;
        await c.query('ROLLBACK').then(
          () => c.release(),
          (rollbackErr: Error) => c.release(rollbackErr),
        );
      }
      const outcome = outcomeForError(err);
      await finish({ ...outcome, deviceId: device?.id ?? null });
      if (err instanceof AppError) throw err;
      if (isDatabaseUnavailable(err))
        throw new AppError('DATABASE_UNAVAILABLE', 'database unavailable', { cause: err });
      throw new AppError('SNAPSHOT_FAILED', 'could not build the snapshot', { cause: err });
    }
  });
}
