/**
 * The device-sync request from start to finish, in stages: the audit row first; then
 * identify (device and credential); then, in one REPEATABLE READ READ ONLY session,
 * scope digests and the manifest (written before the first byte is sent); then the
 * body, which owns the session. The audit row is finished with the outcome whatever
 * happens to the response.
 */
import { trace, context, type Span } from '@opentelemetry/api';
import { newUlid } from '../../platform/ids.ts';
import { globalSha256, type TableDigest } from '../../contract/canonical.ts';
import type { DataModel } from '../../contract/data-model.ts';
import type { Piece } from '../../contract/pieces.ts';
import type { DeviceReport, Manifest, ManifestSignature, SyncRequestBody } from '../../contract/wire.ts';
import type { DeviceReportRow } from './repo/reports.ts';
import { signManifest, type SigningKey } from '../../contract/signing.ts';
import type { Pool } from '../../platform/db.ts';
import { AppError, normalizeError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import { startStep, step, type OpenStep } from '../../platform/step.ts';
import { iterateInContext } from '../../platform/tracing.ts';
import type { StartedRequest } from './repo/requests.ts';
import type { AuditStore } from './audit-store.ts';
import type { DigestCache } from './memory/digest-cache.ts';
import { manifestToWire, requireMac, type Device } from '../model.ts';
import type { CentralMetrics } from '../metrics.ts';
import { checkCredential, type CredentialVerifier } from './credentials.ts';
import { spendDeviceBudget, type Limits } from './budgets.ts';
import { openRequestAudit, outcomeForError, type RequestAudit } from './request-audit.ts';
import type { SnapshotSession } from './sources/snapshot-session.ts';
import type { SnapshotSource } from './sources/snapshot-source.ts';
import { newStreamStats, snapshotBody, type BodySource } from './snapshot-body.ts';
import {
  answerFromCaches,
  answerWithOwnRow,
  piecesInSession,
  scopeDigests,
  type Held,
} from './scope/digests.ts';
import { inlinePieces } from './inline-pieces.ts';
import type { OwnRowReader } from './scope/own-rows.ts';
import type { SharedScopeReader } from './scope/shared-scopes.ts';
import type { SlotKind } from './admission.ts';
import type { ReportedVersions, ServedModels } from './versions.ts';
import type { TableCache } from './memory/table-cache.ts';

export interface SyncDeps {
  /** Short queries: the batches of `audit`, health and the admin API. */
  pool: Pool;
  /**
   * Request rows, manifests, outcomes, the headers acks are checked against, acks,
   * piece-fetch rows and the manifests piece fetches name: batched on `pool`.
   */
  audit: AuditStore;
  /**
   * Long snapshot transactions only, on the read replica when there is one. Kept apart
   * so a request holding a snapshot connection can never wait on itself for an audit
   * connection (pool deadlock).
   */
  snapshots: SnapshotSource;
  /**
   * Devices' own rows, many in one statement, for a device whose neighbours' shared tables
   * are already hashed: no snapshot session.
   */
  ownRows: OwnRowReader;
  /**
   * The shared tables of a location none of whose devices was answered at its version,
   * read with other such locations' in one session.
   */
  sharedScopes: SharedScopeReader;
  manifestTtlSeconds: number;
  metrics: CentralMetrics;
  signingKey: SigningKey;
  digestCache: DigestCache;
  /** Table rows by content, shared by every device whose scope holds the same. */
  tableCache: TableCache;
  /** The most bytes of rows sent inline to an edge that holds nothing (0: never). */
  inlinePiecesMaxBytes: number;
  credentials: CredentialVerifier;
  limits: Limits;
  /** false in the lab-only MAC-only mode. */
  requireCredential: boolean;
  /** The data-model versions answered: Central's own and the one before (a rolling upgrade). */
  models: ServedModels;
}

export interface SyncInput {
  body: SyncRequestBody;
  /** What the edge said it runs (see reportedVersions); undefined when it did not say. */
  reported: ReportedVersions;
  /** The edge asked for its pieces in the answer (INLINE_PIECES_HEADER). */
  inlinePieces: boolean;
  authorization: string | undefined;
  remoteAddr: string | null;
  log: Logger;
  /** Called once this request has its own audit row (refusals before that are audited by the route). */
  onAudited(): void;
  /**
   * Takes a slot, once the device authenticated, waiting briefly; throws OVERLOADED when
   * none comes: an answer slot for an answer that sends rows, then a session slot too if it
   * opens a snapshot session (sync/admission.ts). Resolves to the release of every slot the
   * request holds (idempotent; the route calls it too once the response closed).
   */
  admit(kind: SlotKind): Promise<() => void>;
  /** Counts this answer against its device's bound (MAX_ANSWERS_PER_DEVICE), once; RATE_LIMITED beyond it. */
  claim(deviceId: string): void;
}

export interface PreparedSync {
  manifest: Manifest;
  body: AsyncIterable<Buffer>;
  /** Every piece follows the manifest in the body (sync/inline-pieces.ts). */
  inlinePieces: boolean;
  /** Bytes of the body produced so far (only as fast as the client takes them). */
  readonly progress: { readonly bytes: number };
  /** Call once the response is closed; `sent` is true when every byte was handed to the client. */
  complete(sent: boolean, err?: Error): Promise<void>;
}

/** One request as it goes through the stages. */
interface SyncRequest {
  deps: SyncDeps;
  input: SyncInput;
  mac: string;
  log: Logger;
  audit: RequestAudit;
  /** The HTTP server span, which carries the manifest id for trace search. */
  httpSpan: Span | undefined;
  /** The audit row, and the device as read with it. */
  started: StartedRequest;
}

interface Signed {
  manifest: Manifest;
  signature: ManifestSignature;
}

export async function prepareSync(deps: SyncDeps, input: SyncInput): Promise<PreparedSync> {
  const mac = requireMac(input.body.mac);
  const log = input.log.child({ device: mac });
  const httpSpan = trace.getActiveSpan();
  const started = await deps.audit.startRequest({
    mac,
    remoteAddr: input.remoteAddr,
    schemaVersion: input.reported.schemaVersion ?? null,
    softwareVersion: input.reported.softwareVersion ?? null,
  });
  input.onAudited();
  const audit = openRequestAudit(deps, started.requestId, log);
  const request: SyncRequest = { deps, input, mac, log, audit, httpSpan, started };
  // Every step below is a child of the request's step.
  return context.with(audit.step.context, () => stages(request));
}

async function stages(r: SyncRequest): Promise<PreparedSync> {
  let session: SnapshotSession | undefined;
  let device: Device | undefined;
  try {
    const { device: known, scopeVersion, model } = await step(r.log, 'device.resolve', {}, () => identify(r));
    device = known;
    const { body } = r.input;
    const held: Held = {
      global: body.knownGlobalSha256,
      tables: body.knownTables,
      pieces: body.pieces === true,
    };
    let cached = await step(r.log, 'scope.check', { deviceId: known.id }, (open) =>
      answerFromCaches(r.deps, known, model, scopeVersion, held, open),
    );
    // A slot bounds the answers that read or send rows; an unchanged one does neither. Own-row
    // reads take one too, though batched: without it a storm overloaded Central (docs/scaling.md).
    // An answer that sends rows counts against its device's bound; an unchanged one holds nothing.
    if (cached?.rows !== false) r.input.claim(known.id);
    let release = cached?.rows !== false ? await r.input.admit('answer') : undefined;
    if (!cached) {
      cached = await step(r.log, 'scope.own_row', { deviceId: known.id }, (open) =>
        answerWithOwnRow(r.deps, known, model, scopeVersion, held, open),
      );
      // Its row is read: an answer that sends none needs the slot no longer.
      if (cached?.rows === false) {
        release?.();
        release = undefined;
      }
    }
    let tables = cached?.tables;
    let pieces = cached?.pieces;
    if (!tables) {
      // Its release gives back the answer slot too.
      r.input.claim(known.id);
      release = await r.input.admit('session');
      r.deps.metrics.snapshotSessions.inc();
      // The session opens under the request's step; a scope.compute step for each read of it.
      const computed = await r.deps.snapshots.read(known, scopeVersion, r.log, (opened) =>
        step(r.log, 'scope.compute', { deviceId: known.id, read: opened.reason }, async (open) => {
          const tx = opened.session.client;
          const digests = await scopeDigests(r.deps, tx, known, model, opened.version, open);
          return {
            digests,
            pieces: held.pieces ? await piecesInSession(r.deps, tx, model, digests, held) : undefined,
          };
        }),
      );
      session = computed.session;
      ({ digests: tables, pieces } = computed.result);
      if (held.pieces) {
        // Rows come by /pieces: the session and the slot are done once the digests are, and
        // are not held while the manifest is stored (a batched write) and sent.
        await session.close();
        session = undefined;
        release?.();
      }
    }
    const digests = tables;
    const signed = await step(r.log, 'manifest.create', {}, (open) =>
      createManifest(r, known, model, digests, pieces, open),
    );
    r.audit.step.annotate({ manifestId: signed.manifest.manifestId });
    r.httpSpan?.setAttribute('dbupdate.manifest_id', signed.manifest.manifestId);
    const source = {
      session,
      pinned: cached?.pinned ?? new Map(),
      cache: r.deps.tableCache,
      tables: model.tables,
      inline: wantsInline(r, held) && pieces ? inlinePieces(r.deps, model, pieces) : undefined,
    };
    return send(r, source, signed, known, release);
  } catch (err) {
    await session?.close(err as Error);
    const appErr = normalizeError(err, 'SNAPSHOT_FAILED');
    await r.audit.finish({ ...outcomeForError(appErr), deviceId: device?.id ?? null });
    throw appErr;
  }
}

/** Inline pieces only for an edge that holds nothing: it loads every piece, in their order. */
function wantsInline(r: SyncRequest, held: Held): boolean {
  return r.input.inlinePieces && held.pieces && !held.global && !held.tables;
}

/**
 * Who it is, from what was read with the audit row: a caller that cannot prove it holds
 * no snapshot slot or connection, and spends no device's budget nor the fleet's.
 */
async function identify(
  r: SyncRequest,
): Promise<NonNullable<StartedRequest['found']> & { model: DataModel }> {
  const { found } = r.started;
  if (!found) throw new AppError('DEVICE_NOT_FOUND', `no device with MAC ${r.mac}`);
  if (!found.device.enabled) throw new AppError('DEVICE_DISABLED', `device ${r.mac} is disabled`);
  if (r.deps.requireCredential)
    await checkCredential(r.deps.credentials, found.secretHashes, r.input.authorization);
  const model = r.deps.models.forEdge(r.input.reported);
  await spendDeviceBudget(r.deps.limits, found.device.id, 'request');
  // Stored before anything can fail the answer; a failure to store it fails only the report.
  const report = r.input.body.report;
  if (report)
    await r.deps.audit.recordReport(reportRow(found.device, report)).catch((err: unknown) => {
      r.deps.metrics.auditFailures.inc();
      r.log.error({ err, event: 'audit.write', outcome: 'error' }, 'could not store the device report');
    });
  return { ...found, model };
}

/** The signed manifest, stored before its first byte is sent so an ack can always find it. */
async function createManifest(
  r: SyncRequest,
  device: Device,
  model: DataModel,
  tables: TableDigest[],
  pieces: ReadonlyMap<string, readonly Piece[]> | undefined,
  open: OpenStep,
): Promise<Signed> {
  const generatedAt = new Date();
  const global = globalSha256(tables);
  const rowsIncluded = r.input.body.knownGlobalSha256 !== global;
  const manifest = manifestToWire({
    manifestId: newUlid(),
    generatedAt,
    expiresAt: new Date(generatedAt.getTime() + r.deps.manifestTtlSeconds * 1000),
    schemaVersion: model.version,
    tables,
    globalSha256: global,
    device,
    rowsIncluded,
    pieces: rowsIncluded ? pieces : undefined,
    requestNonce: r.input.body.nonce,
  });
  open.annotate({ manifestId: manifest.manifestId, rowsIncluded: manifest.rowsIncluded });
  await r.deps.audit.insertManifest(manifest, r.mac);
  return { manifest, signature: signManifest(manifest, r.deps.signingKey) };
}

/**
 * The body, and the one callback that closes the session if the body did not, gives the
 * slot back, and finishes the audit.
 */
function send(
  r: SyncRequest,
  source: BodySource,
  signed: Signed,
  device: Device,
  release: (() => void) | undefined,
): PreparedSync {
  const { manifest } = signed;
  const log = r.log.child({ manifestId: manifest.manifestId });
  const stats = newStreamStats();
  const sending = startStep(log, 'snapshot.send', { rowsIncluded: manifest.rowsIncluded });
  const started = performance.now();
  const body = snapshotBody(source, signed, stats, r.input.body.knownTables, log);
  return {
    manifest,
    inlinePieces: source.inline !== undefined,
    body: iterateInContext(sending.context, body),
    progress: stats,
    async complete(sent, err) {
      const ok = sent && stats.complete && !err;
      const failure = ok ? undefined : (err ?? new Error('response aborted'));
      await source.session?.close(failure);
      // The slot bounds sessions: it is free once the session is, not after the audit row.
      release?.();
      const { metrics } = r.deps;
      metrics.bytesServed.inc(stats.bytes);
      metrics.bytesFromTableCache.inc(stats.bytesFromCache);
      if (ok && manifest.rowsIncluded)
        metrics.rowsServed.inc(manifest.tables.reduce((n, t) => n + t.rowCount, 0));
      if (ok && source.inline) metrics.piecesServed.inc({ result: 'inline' }, source.inline.length);
      sending.annotate({ bytes: stats.bytes });
      sending.finish(failure);
      const status = ok ? (manifest.rowsIncluded ? 'served' : 'unchanged') : err ? 'error' : 'aborted';
      metrics.sendSeconds.observe({ outcome: status }, (performance.now() - started) / 1000);
      await r.audit.finish({
        status,
        reason: ok ? null : (err?.message ?? 'client went away before the snapshot was sent'),
        errorCode: ok ? null : err ? 'SNAPSHOT_FAILED' : null,
        deviceId: device.id,
        manifestId: manifest.manifestId,
        bytesSent: stats.bytes,
        payloadSha256: ok ? stats.payload.digest('hex') : null,
      });
    },
  };
}

/** A report as stored; a time the database could not hold (or a device's wild clock) becomes now. */
function reportRow(device: Device, report: DeviceReport): DeviceReportRow {
  const when = (text: string) => {
    const ms = Date.parse(text);
    const year = new Date(ms).getUTCFullYear();
    return Number.isFinite(ms) && year >= 2000 && year <= 2200
      ? new Date(ms).toISOString()
      : new Date().toISOString();
  };
  return {
    deviceId: device.id,
    mac: device.mac,
    failure: report.failure ? { ...report.failure, at: when(report.failure.at) } : null,
    drift: report.drift ? { tables: report.drift.tables, checkedAt: when(report.drift.checkedAt) } : null,
  };
}
