/**
 * POST /api/device-sync/pieces: the rows of a manifest's pieces, by index (docs/protocol.md,
 * "Pieces"). The edge asks for what it lacks: after a cut, only what it has not staged; for a
 * delta, only the pieces whose content changed. Each run of wanted pieces is one range read
 * in a fresh snapshot; a piece whose rows no longer hash to its id (the data changed since
 * the manifest) is answered `gone`, and the edge asks for a new manifest. At most one piece
 * is held at a time; pieces read are kept by content (memory/memory.ts), and a call whose pieces
 * are all there is answered from memory without a slot or a connection. Every call leaves
 * one audit row in sync_piece_fetches.
 */
import { createHash } from 'node:crypto';
import { context } from '@opentelemetry/api';
import type { TableDigest } from '../../contract/canonical.ts';
import type { DataModel } from '../../contract/data-model.ts';
import { fromRuns, KeyedLines, toRuns, type Piece } from '../../contract/pieces.ts';
import type { TableDef } from '../../contract/tables.ts';
import type { PieceFrame, PiecesEndFrame, PiecesRequestBody } from '../../contract/wire.ts';
import { AppError, normalizeError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import { startStep, type OpenStep } from '../../platform/step.ts';
import { iterateInContext } from '../../platform/tracing.ts';
import { requireMac, type Device } from '../model.ts';
import { copyPieceRange, type ManifestForPieces } from './repo/pieces.ts';
import { proveManifestOwner } from './identity.ts';
import type { PreparedSync, SyncDeps } from './deps.ts';
import { spendDeviceBudget } from './budgets.ts';
import { digestAndCut } from './scope/digests.ts';
import type { ScopeMemory } from './memory/memory.ts';
import type { SnapshotSession } from './sources/snapshot-session.ts';
import type { AnswerScope } from './answer-scope.ts';

export interface PiecesInput {
  body: PiecesRequestBody;
  authorization: string | undefined;
  log: Logger;
  /**
   * As a snapshot request's: its device's claim, a session slot (taken ahead of snapshot
   * requests: admission.ts) and its session, given back where the route ends the answer.
   */
  scope: AnswerScope;
}

/** As a snapshot answer, without a manifest of its own. */
export type PreparedPieces = Omit<PreparedSync, 'manifest' | 'inlinePieces' | 'rowsInMemory'>;

interface Wanted {
  def: TableDef;
  digest: TableDigest;
  indexes: number[];
  /** The table's piece list; undefined when it is gone (every wanted piece is then `gone`). */
  pieces: readonly Piece[] | undefined;
  /** Wanted pieces found in the cache, held from the start so an eviction cannot lose them. */
  inMemory: Map<number, Buffer>;
}

interface Stats {
  bytes: number;
  /** Rows served from the content-addressed cache, not read from PostgreSQL. */
  fromCache: number;
  sent: number;
  gone: number;
  complete: boolean;
}

/** Rows held for one piece at most (a piece is about 25 KB; a single huge jsonb row may be more). */
const HOLD_MAX_BYTES = 64 * 2 ** 20;

/** Pieces from memory sent in one chunk (a piece is about 25 KB at most, most are far smaller). */
const MEMORY_BATCH_BYTES = 64 * 1024;

const frame = (value: PieceFrame | PiecesEndFrame) => Buffer.from(JSON.stringify(value) + '\n');

export async function preparePieces(deps: SyncDeps, input: PiecesInput): Promise<PreparedPieces> {
  const { manifestId, want } = input.body;
  const mac = requireMac(input.body.mac);
  const log = input.log.child({ device: mac, manifestId });
  // The audit row and the manifest's lookup go in their own batches, side by side.
  const lookup = deps.audit.findManifestForPieces(manifestId);
  lookup.catch(() => {}); // awaited below, once the audit row exists to record its failure
  const fetch = await openFetch(deps, input, mac, log);
  try {
    const proved = await proveManifestOwner<Device, ManifestForPieces>(
      deps,
      mac,
      manifestId,
      () => lookup,
      input.authorization,
      true,
    );
    const found = proved.manifest;
    fetch.device = proved.device;
    if (found.expiresAt.getTime() <= Date.now())
      throw new AppError(
        'MANIFEST_EXPIRED',
        `manifest ${manifestId} expired at ${found.expiresAt.toISOString()}`,
      );
    const model = deps.models.forEdge({ schemaVersion: found.schemaVersion });
    input.scope.claim(proved.device.id);
    await spendDeviceBudget(deps.limits, proved.device.id, 'pieces');
    // Every wanted piece already in memory (the devices of a location share them): no slot,
    // no connection. Otherwise a slot and a fresh snapshot, as a snapshot request takes.
    let wanted = await wantedPieces(deps, undefined, model, found, want);
    let session: SnapshotSession | undefined;
    if (!wanted?.every((w) => w.pieces && w.indexes.every((i) => w.inMemory.has(i)))) {
      await input.scope.admit('session', 'first');
      const opened = await context.with(fetch.step.context, () =>
        deps.snapshots.open(proved.device, found.scopeVersion, log),
      );
      session = opened.session;
      input.scope.hold(session);
      // Only a piece list missing from the cache needs the lists made again, in the session.
      wanted ??= (await wantedPieces(deps, session, model, found, want))!;
    }
    const body = piecesBody(deps.memory, session, wanted, fetch.stats, log);
    fetch.prepared = true;
    return { body: iterateInContext(fetch.step.context, body), progress: fetch.stats };
  } catch (err) {
    // The route ends the answer's scope with it: session, slots, then the fetch's outcome.
    throw normalizeError(err, 'SNAPSHOT_FAILED');
  }
}

interface Fetch {
  step: OpenStep;
  stats: Stats;
  /** The device, once it proved who it is. */
  device: Device | undefined;
  /** The body was made: a failure from now on is an error of the stream, not a refusal. */
  prepared: boolean;
}

/** The fetch's audit row, and what ends it: its outcome once the route closed the answer. */
async function openFetch(deps: SyncDeps, input: PiecesInput, mac: string, log: Logger): Promise<Fetch> {
  const { manifestId, want } = input.body;
  // Runs are bounded by the schema (PIECE_INDEX_MAX), their sum here for the audit's integer.
  const requested = Math.min(
    2 ** 31 - 1,
    Object.values(want).reduce(
      (n, runs) => n + runs.reduce((m, [from, to]) => m + Math.max(0, to - from + 1), 0),
      0,
    ),
  );
  const fetchId = await deps.audit.startPieceFetch({ manifestId, mac, requested });
  const stats: Stats = { bytes: 0, fromCache: 0, sent: 0, gone: 0, complete: false };
  const fetch: Fetch = {
    step: startStep(log, 'pieces.serve', { requested }),
    stats,
    device: undefined,
    prepared: false,
  };
  input.scope.onEnd(async ({ sent, error }) => {
    const ok = sent && stats.complete && !error;
    const appErr = error && normalizeError(error, 'SNAPSHOT_FAILED');
    const status = ok
      ? 'served'
      : !appErr
        ? 'aborted'
        : fetch.prepared || appErr.status >= 500
          ? 'error'
          : 'refused';
    deps.metrics.bytesServed.inc(stats.bytes);
    deps.metrics.bytesFromTableCache.inc(stats.fromCache);
    fetch.step.annotate({ sent: stats.sent, gone: stats.gone, bytes: stats.bytes });
    fetch.step.finish(status === 'served' ? undefined : (appErr ?? new Error(status)));
    deps.metrics.pieceFetches.inc({ outcome: status });
    deps.metrics.piecesServed.inc({ result: 'sent' }, stats.sent);
    deps.metrics.piecesServed.inc({ result: 'gone' }, stats.gone);
    await deps.audit
      .finishPieceFetch(fetchId, {
        status,
        errorCode: appErr?.code ?? null,
        deviceId: fetch.device?.id ?? null,
        ...stats,
      })
      .catch((e: unknown) => {
        deps.metrics.auditFailures.inc();
        log.error({ err: e, event: 'audit.write', outcome: 'error' }, 'could not finish a piece fetch row');
      });
  });
  return fetch;
}

/**
 * The piece lists of the manifest's tables, from the cache, or cut again in the session;
 * without a session, undefined when a list is not in the cache.
 */
async function wantedPieces(
  deps: SyncDeps,
  session: SnapshotSession | undefined,
  model: DataModel,
  found: ManifestForPieces,
  want: PiecesRequestBody['want'],
): Promise<Wanted[] | undefined> {
  const out: Wanted[] = [];
  for (const def of model.tables) {
    const runs = want[def.name];
    if (!runs) continue;
    const digest = found.tables.find((t) => t.name === def.name);
    if (!digest) throw new AppError('INVALID_INPUT', `manifest has no table ${def.name}`);
    let pieces = deps.memory.pieces(digest);
    if (!pieces) {
      if (!session) return undefined;
      // Another Central made the manifest, or the list was evicted: cut the table as it is now.
      const [now] = await digestAndCut(deps, session.client, [def]);
      pieces = now!.sha256 === digest.sha256 ? deps.memory.pieces(now!) : undefined;
    }
    let indexes: number[];
    try {
      // A table whose pieces are gone had at most one piece per row: runs past that are refused,
      // not spelled out index by index.
      indexes = fromRuns(runs, pieces?.length ?? digest.rowCount);
    } catch (err) {
      throw new AppError('INVALID_INPUT', `want.${def.name}: ${(err as Error).message}`);
    }
    const inMemory = new Map<number, Buffer>();
    for (const i of pieces ? indexes : []) {
      const rows = deps.memory.pieceRows(def.name, pieces![i]!);
      if (rows) inMemory.set(i, rows);
    }
    out.push({ def, digest, indexes, pieces, inMemory });
  }
  const unknown = Object.keys(want).filter((name) => !model.tables.some((d) => d.name === name));
  if (unknown.length > 0) throw new AppError('INVALID_INPUT', `unknown tables: ${unknown.join(', ')}`);
  return out;
}

async function* piecesBody(
  memory: ScopeMemory,
  session: SnapshotSession | undefined,
  wanted: Wanted[],
  stats: Stats,
  log: Logger,
): AsyncGenerator<Buffer> {
  const emit = (buf: Buffer) => {
    stats.bytes += buf.length;
    return buf;
  };
  // Pieces from memory go out together, up to MEMORY_BATCH_BYTES: one compression flush and
  // one socket write for many small pieces (each a flush and a write of its own cost Central
  // a fifth of its CPU in a first-sync storm).
  let batch: Buffer[] = [];
  let batched = 0;
  const takeBatch = () => {
    const out = emit(Buffer.concat(batch));
    [batch, batched] = [[], 0];
    return out;
  };
  let failure: Error | undefined = new Error('the response closed before the pieces were sent');
  try {
    for (const w of wanted) {
      for (const [from, to] of toRuns(w.indexes)) {
        if (!w.pieces) {
          if (batched > 0) yield takeBatch();
          for (let i = from; i <= to; i++) yield emit(goneFrame(w.def, i, stats));
          continue;
        }
        // Pieces in memory are sent from there; each run of the others is one range read.
        for (let i = from; i <= to;) {
          const rows = w.inMemory.get(i);
          if (rows) {
            stats.sent++;
            stats.fromCache += rows.length;
            const head = frame({ table: w.def.name, index: i, rowCount: w.pieces[i]!.rows });
            batch.push(head, rows);
            batched += head.length + rows.length;
            if (batched >= MEMORY_BATCH_BYTES) yield takeBatch();
            i++;
            continue;
          }
          if (batched > 0) yield takeBatch();
          let last = i;
          while (last < to && !w.inMemory.has(last + 1)) last++;
          const read = runPieces(memory, session!, w.def, w.pieces, i, last, stats);
          for await (const buf of read) yield emit(buf);
          i = last + 1;
        }
      }
    }
    batch.push(frame({ end: true, pieces: stats.sent + stats.gone }));
    yield takeBatch();
    stats.complete = true;
    failure = undefined;
  } catch (err) {
    failure = err as Error;
    log.warn({ event: 'pieces.failed', err }, 'piece stream failed');
    throw err;
  } finally {
    await session?.close(failure);
  }
}

function goneFrame(def: TableDef, index: number, stats: Stats): Buffer {
  stats.gone++;
  return frame({ table: def.name, index, rowCount: 0, gone: true });
}

/**
 * Pieces `from`..`to` of one table, read as one key range and split at each piece's last
 * key. A piece is sent only if its rows hash to its id; otherwise it is `gone`.
 */
async function* runPieces(
  memory: ScopeMemory,
  session: SnapshotSession,
  def: TableDef,
  pieces: readonly Piece[],
  from: number,
  to: number,
  stats: Stats,
): AsyncGenerator<Buffer> {
  const after = from === 0 ? null : pieces[from - 1]!.last;
  const rows = await copyPieceRange(session.client, def, after, pieces[to]!.last);
  const lines = new KeyedLines(def);
  // The run's last keys as bytes, by `at - from`.
  const lasts = pieces.slice(from, to + 1).map((p) => Buffer.from(p.last, 'latin1'));
  const out: Buffer[] = [];
  const keep = memory.pieceKeeper();
  let at = from;
  let held: Buffer[] = [];
  let heldRows = 0;
  let heldBytes = 0;
  const close = () => {
    const p = pieces[at]!;
    const id = createHash('sha256');
    for (const b of held) id.update(b);
    const same = heldBytes <= HOLD_MAX_BYTES && heldRows === p.rows && id.digest('hex') === p.id;
    if (same) {
      stats.sent++;
      // Kept (as its own copy) only up to what one table may hold: a run longer than the cache
      // would evict every piece before it was asked for again, at a copy each.
      keep(def.name, p, held);
      out.push(frame({ table: def.name, index: at, rowCount: p.rows }), ...held);
    } else out.push(goneFrame(def, at, stats));
    [held, heldRows, heldBytes] = [[], 0, 0];
    at++;
  };
  for await (const chunk of rows) {
    lines.write(chunk as Buffer, (buf, start, end, keyEnd) => {
      // Keys compare as bytes (src/contract/pieces.ts); `buf` is never reused, so rows are kept as slices.
      while (at <= to && lasts[at - from]!.compare(buf, start, keyEnd) < 0) close();
      if (at > to) return;
      heldRows++;
      heldBytes += end - start;
      // A piece that grew past any piece's size is gone; its rows need not be kept.
      if (heldBytes <= HOLD_MAX_BYTES) held.push(buf.subarray(start, end));
      if (lasts[at - from]!.compare(buf, start, keyEnd) === 0) close();
    });
    if (out.length > 0) yield Buffer.concat(out.splice(0));
  }
  while (at <= to) close();
  if (out.length > 0) yield Buffer.concat(out.splice(0));
}
