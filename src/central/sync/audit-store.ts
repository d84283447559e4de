/**
 * The small statements every device-sync request, piece fetch and ack runs (request row,
 * manifest, outcome, the header an ack is checked against, the ack, a piece fetch's row),
 * batched across requests by platform/batcher.ts. Each caller still awaits its own item: a manifest is stored before
 * its answer is sent, an outcome before the request's audit is done, an ack before it is
 * answered.
 */
import type { AckResponse, Manifest } from '../../contract/wire.ts';
import { Batcher, type BatcherOptions } from '../../platform/batcher.ts';
import type { Pool } from '../../platform/db.ts';
import type { AckBody } from '../model.ts';
import {
  findManifestHeaders,
  insertAcksOnce,
  insertManifests,
  type CheckedHeader,
} from './repo/manifests.ts';
import {
  findManifestsForPieces,
  finishPieceFetches,
  startPieceFetches,
  type ManifestForPieces,
  type PieceFetchOutcome,
  type PieceFetchStart,
} from './repo/pieces.ts';
import { upsertReports, type DeviceReportRow } from './repo/reports.ts';
import {
  finishRequests,
  startRequests,
  type RequestOrigin,
  type RequestOutcome,
  type StartedRequest,
} from './repo/requests.ts';

export interface AuditStore {
  startRequest(origin: RequestOrigin): Promise<StartedRequest>;
  insertManifest(manifest: Manifest, mac: string): Promise<void>;
  finishRequest(id: string, outcome: RequestOutcome): Promise<void>;
  findManifestHeader(manifestId: string): Promise<CheckedHeader | undefined>;
  insertAckOnce(ack: AckBody, mac: string): Promise<AckResponse>;
  startPieceFetch(fetch: PieceFetchStart): Promise<string>;
  /** Not an audit write, but as small and as frequent: the manifest a piece fetch names. */
  findManifestForPieces(manifestId: string): Promise<ManifestForPieces | undefined>;
  finishPieceFetch(id: string, outcome: PieceFetchOutcome): Promise<void>;
  /** What an authenticated device said about itself (rare: only when it changed). */
  recordReport(report: DeviceReportRow): Promise<void>;
}

/**
 * One statement of a kind in flight at most, for up to 256 requests: the eight kinds hold
 * eight of the pool's connections at most, whatever the load. Runs of a kind start 40 ms
 * apart at the closest, so a busy Central sends each kind at most 25 times a second (an
 * idle one still runs an item at once); an item waits at most 40 ms and one run for it.
 * On two cores a round trip's socket calls cost more than the rows it carries: at 200
 * first syncs a second, runs 10 ms apart cost PostgreSQL 34 % of a core and Central about
 * 60 %, runs 40 ms apart 19 % and 48 % (docs/scaling.md).
 */
export const AUDIT_BATCHES: BatcherOptions = { maxItems: 256, concurrency: 1, minGapMs: 40 };

export function createAuditStore(pool: Pool, options: BatcherOptions = AUDIT_BATCHES): AuditStore {
  const none = (items: readonly unknown[]) => items.map(() => undefined);
  const manifests = new Batcher(async (items: readonly { manifest: Manifest; mac: string }[]) => {
    await insertManifests(pool, items);
    return none(items);
  }, options);
  const outcomes = new Batcher(async (items: readonly { id: string; outcome: RequestOutcome }[]) => {
    await finishRequests(pool, items);
    return none(items);
  }, options);
  const requests = new Batcher((items: readonly RequestOrigin[]) => startRequests(pool, items), options);
  const headers = new Batcher((ids: readonly string[]) => findManifestHeaders(pool, ids), options);
  const acks = new Batcher(
    (items: readonly { ack: AckBody; mac: string }[]) => insertAcksOnce(pool, items),
    options,
  );
  const fetchStarts = new Batcher(
    (items: readonly PieceFetchStart[]) => startPieceFetches(pool, items),
    options,
  );
  const forPieces = new Batcher((ids: readonly string[]) => findManifestsForPieces(pool, ids), options);
  const fetchOutcomes = new Batcher(async (items: readonly { id: string; outcome: PieceFetchOutcome }[]) => {
    await finishPieceFetches(pool, items);
    return none(items);
  }, options);
  const reports = new Batcher(async (items: readonly DeviceReportRow[]) => {
    await upsertReports(pool, items);
    return none(items);
  }, options);
  return {
    recordReport: (report) => reports.add(report),
    startPieceFetch: (fetch) => fetchStarts.add(fetch),
    findManifestForPieces: (manifestId) => forPieces.add(manifestId),
    finishPieceFetch: (id, outcome) => fetchOutcomes.add({ id, outcome }),
    startRequest: (origin) => requests.add(origin),
    insertManifest: (manifest, mac) => manifests.add({ manifest, mac }),
    finishRequest: (id, outcome) => outcomes.add({ id, outcome }),
    findManifestHeader: (manifestId) => headers.add(manifestId),
    insertAckOnce: (ack, mac) => acks.add({ ack, mac }),
  };
}
