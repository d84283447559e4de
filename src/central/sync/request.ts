/**
 * The device-sync request from start to finish, in stages: the audit row first; then
 * identify (device and credential); then, in one REPEATABLE READ READ ONLY session,
 * scope digests and the manifest (written before the first byte is sent); then the
 * body, which owns the session. The audit row is finished with the outcome whatever
 * happens to the response.
 */
import { trace, context, type Span } from '@opentelemetry/api';
import { globalSha256, type TableDigest } from '../../contract/canonical.ts';
import type { DataModel } from '../../contract/data-model.ts';
import { chunkBytes } from '../../contract/copy-text.ts';
import type { Piece } from '../../contract/pieces.ts';
import { signManifest } from '../../contract/signing.ts';
import type { DeviceReport, Manifest, ManifestSignature } from '../../contract/wire.ts';
import { normalizeError } from '../../platform/errors.ts';
import { newUlid } from '../../platform/ids.ts';
import type { Logger } from '../../platform/logger.ts';
import { startStep, step, type OpenStep } from '../../platform/step.ts';
import { iterateInContext } from '../../platform/tracing.ts';
import { manifestToWire, requireMac, type Device } from '../model.ts';
import { spendDeviceBudget } from './budgets.ts';
import { chooseAnswer } from './decide.ts';
import type { Hold } from '../release/gate.ts';
import { proveDevice, provesWipe } from './identity.ts';
import { emptyGlobal, emptyPieces, emptyTables, noRows, recordWipeSent } from './wipe.ts';
import type { PreparedSync, SyncDeps, SyncInput } from './deps.ts';
import { inlinePieces } from './inline-pieces.ts';
import type { DeviceReportRow } from './repo/reports.ts';
import type { PendingWipe, StartedRequest } from './repo/requests.ts';
import { openRequestAudit, outcomeForError, type RequestAudit } from './request-audit.ts';
import type { Held } from './scope/digests.ts';
import { newStreamStats, snapshotBody, type BodySource } from './snapshot-body.ts';

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
  /** The device, once it proved who it is. */
  device?: Device | undefined;
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
  // Until the body is made, the answer ends in the error that stopped it.
  input.scope.onEnd(async ({ error }) => {
    const appErr = normalizeError(error ?? new Error('response aborted'), 'SNAPSHOT_FAILED');
    await audit.finish({ ...outcomeForError(appErr), deviceId: request.device?.id ?? null });
  });
  // Every step below is a child of the request's step.
  return context.with(audit.step.context, () => stages(request));
}

async function stages(r: SyncRequest): Promise<PreparedSync> {
  try {
    const who = await step(r.log, 'device.resolve', {}, () => identify(r));
    r.device = who.device;
    const { body } = r.input;
    const held: Held = {
      global: body.knownGlobalSha256,
      tables: body.knownTables,
      pieces: body.pieces === true,
    };
    return who.wipe ? await wipeAnswer(r, who, held) : await dataAnswer(r, who, held);
  } catch (err) {
    // The route closes the answer's scope with it: session, slots, then this audit's outcome.
    throw normalizeError(err, 'SNAPSHOT_FAILED');
  }
}

type Identified = Awaited<ReturnType<typeof identify>>;

/** The device's data as Central holds it now, unless release control holds the change. */
async function dataAnswer(r: SyncRequest, who: Identified, held: Held): Promise<PreparedSync> {
  const { device, model, scopeVersion } = who;
  const chosen = await chooseAnswer({ ...r, device, model, version: scopeVersion, held });
  const { tables } = chosen;
  const hold = await step(r.log, 'release.check', {}, async (open) => {
    const found = await r.deps.release.check({
      device,
      cohort: who.cohort,
      version: scopeVersion,
      // Empty tables (after a wipe) are nothing to keep: such a device is never held.
      knownGlobal: held.global === emptyGlobal(model) ? null : held.global,
      tables,
      globalSha256: globalSha256(tables),
    });
    open.annotate({ held: found?.reason ?? null });
    return found;
  });
  // A held answer sends no rows: the device keeps what it holds (docs/releases.md).
  const pieces = hold ? undefined : chosen.pieces;
  const signed = await step(r.log, 'manifest.create', {}, (open) =>
    createManifest(r, device, model, { tables, pieces, hold }, open),
  );
  const source = {
    session: hold ? undefined : chosen.session,
    pinned: hold ? new Map<string, Buffer[]>() : chosen.pinned,
    memory: r.deps.memory,
    tables: model.tables,
    inline: wantsInline(r, held) && pieces ? inlinePieces(r.deps, model, pieces) : undefined,
  };
  return send(r, source, signed, device);
}

/** Every table empty, signed and marked `wipe` (sync/wipe.ts): nothing is read. */
async function wipeAnswer(r: SyncRequest, who: Identified, held: Held): Promise<PreparedSync> {
  const { device, model } = who;
  const tables = emptyTables(model);
  const pieces = held.pieces ? emptyPieces(tables, held.tables) : undefined;
  const wipe = { requestedAt: who.wipe!.requestedAt.toISOString() };
  const signed = await step(r.log, 'manifest.create', { wipe: true }, (open) =>
    createManifest(r, device, model, { tables, pieces, hold: undefined, wipe }, open),
  );
  await recordWipeSent(r.deps.pool, device.id, signed.manifest.manifestId);
  r.log.warn(
    { event: 'device.wipe', manifestId: signed.manifest.manifestId },
    'answered with a wipe: the device empties its tables',
  );
  const source = { session: undefined, pinned: noRows(model), memory: r.deps.memory, tables: model.tables };
  return send(r, source, signed, device);
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
): Promise<NonNullable<StartedRequest['found']> & { model: DataModel; wipe: PendingWipe | undefined }> {
  const { found } = r.started;
  const wipe =
    found?.wipe && (await provesWipe(r.deps, found.wipe.secretHashes, r.input.authorization))
      ? found.wipe
      : undefined;
  const device = wipe ? found!.device : await proveDevice(r.deps, r.mac, found, r.input.authorization);
  const model = r.deps.models.forEdge(r.input.reported);
  await spendDeviceBudget(r.deps.limits, device.id, 'request');
  // Stored before anything can fail the answer; a failure to store it fails only the report.
  // A device being wiped (perhaps with a revoked credential) reports nothing Central acts on.
  const report = wipe ? undefined : r.input.body.report;
  if (report)
    await r.deps.audit.recordReport(reportRow(device, report)).catch((err: unknown) => {
      r.deps.metrics.auditFailures.inc();
      r.log.error({ err, event: 'audit.write', outcome: 'error' }, 'could not store the device report');
    });
  return { ...found!, device, model, wipe };
}

/** The signed manifest, stored before its first byte is sent so an ack can always find it. */
async function createManifest(
  r: SyncRequest,
  device: Device,
  model: DataModel,
  answer: {
    tables: TableDigest[];
    pieces: ReadonlyMap<string, readonly Piece[]> | undefined;
    hold: Hold | undefined;
    wipe?: Manifest['wipe'];
  },
  open: OpenStep,
): Promise<Signed> {
  const { tables, pieces, hold, wipe } = answer;
  const generatedAt = new Date();
  const global = globalSha256(tables);
  const rowsIncluded = !hold && r.input.body.knownGlobalSha256 !== global;
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
    held: hold,
    wipe,
  });
  open.annotate({ manifestId: manifest.manifestId, rowsIncluded: manifest.rowsIncluded });
  await r.deps.audit.insertManifest(manifest, r.mac);
  r.audit.step.annotate({ manifestId: manifest.manifestId });
  r.httpSpan?.setAttribute('dbupdate.manifest_id', manifest.manifestId);
  return { manifest, signature: signManifest(manifest, r.deps.signingKey) };
}

/**
 * The body, and from now on the end of the answer: its outcome with the bytes sent, once the
 * scope closed the session (if the body did not) and gave the slots back.
 */
function send(r: SyncRequest, source: BodySource, signed: Signed, device: Device): PreparedSync {
  const { manifest } = signed;
  const log = r.log.child({ manifestId: manifest.manifestId });
  const stats = newStreamStats();
  const sending = startStep(log, 'snapshot.send', { rowsIncluded: manifest.rowsIncluded });
  const started = performance.now();
  const body = snapshotBody(source, signed, stats, r.input.body.knownTables, log);
  r.input.scope.onEnd(async ({ sent, error }) => {
    const ok = sent && stats.complete && !error;
    const { metrics } = r.deps;
    metrics.bytesServed.inc(stats.bytes);
    metrics.bytesFromTableCache.inc(stats.bytesFromCache);
    if (ok && manifest.rowsIncluded)
      metrics.rowsServed.inc(manifest.tables.reduce((n, t) => n + t.rowCount, 0));
    if (ok && source.inline) metrics.piecesServed.inc({ result: 'inline' }, source.inline.length);
    sending.annotate({ bytes: stats.bytes });
    sending.finish(ok ? undefined : (error ?? new Error('response aborted')));
    const status = !ok
      ? error
        ? 'error'
        : 'aborted'
      : manifest.rowsIncluded
        ? 'served'
        : manifest.held
          ? 'held'
          : 'unchanged';
    metrics.sendSeconds.observe({ outcome: status }, (performance.now() - started) / 1000);
    await r.audit.finish({
      status,
      // A held answer says why (release control): `devices list` shows it.
      reason: ok
        ? (manifest.held?.reason ?? null)
        : (error?.message ?? 'client went away before the snapshot was sent'),
      errorCode: ok ? null : error ? 'SNAPSHOT_FAILED' : null,
      deviceId: device.id,
      manifestId: manifest.manifestId,
      bytesSent: stats.bytes,
      payloadSha256: ok ? stats.payload.digest('hex') : null,
    });
  });
  return {
    manifest,
    inlinePieces: source.inline !== undefined,
    rowsInMemory: source.session
      ? undefined
      : [...source.pinned.values()].reduce((n, rows) => n + chunkBytes(rows), 0),
    body: iterateInContext(sending.context, body),
    progress: stats,
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
