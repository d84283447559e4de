/**
 * What the device-sync request path is given (SyncDeps, built once by server.ts), what a
 * route hands it for one request (SyncInput), and what it hands back (PreparedSync).
 */
import type { Manifest, SyncRequestBody } from '../../contract/wire.ts';
import type { Pool } from '../../platform/db.ts';
import type { Logger } from '../../platform/logger.ts';
import type { CentralMetrics } from '../metrics.ts';
import type { SigningKey } from '../../contract/signing.ts';
import type { AuditStore } from './audit-store.ts';
import type { CredentialVerifier } from './credentials.ts';
import type { Limits } from './budgets.ts';
import type { ScopeMemory } from './memory/memory.ts';
import type { AnswerScope } from './answer-scope.ts';
import type { OwnRowReader } from './scope/own-rows.ts';
import type { SharedScopeReader } from './scope/shared-scopes.ts';
import type { SnapshotSource } from './sources/snapshot-source.ts';
import type { ReportedVersions, ServedModels } from './versions.ts';
import type { ReleaseGate } from '../release/gate.ts';

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
  /** What Central remembers: digests by scope version, rows and pieces by content (memory/memory.ts). */
  memory: ScopeMemory;
  /** The most bytes of rows sent inline to an edge that holds nothing (0: never). */
  inlinePiecesMaxBytes: number;
  credentials: CredentialVerifier;
  limits: Limits;
  /** false in the lab-only MAC-only mode. */
  requireCredential: boolean;
  /** The data-model versions answered: Central's own and the one before (a rolling upgrade). */
  models: ServedModels;
  /** Whether a change may go to a device now: the freeze and the mass-change guard (release/). */
  release: ReleaseGate;
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
   * What the answer holds (its slots, its session) and the one place that gives it back and
   * finishes its audit, whatever ends it (answer-scope.ts); the route closes it.
   */
  scope: AnswerScope;
}

export interface PreparedSync {
  manifest: Manifest;
  body: AsyncIterable<Buffer>;
  /** Every piece follows the manifest in the body (sync/inline-pieces.ts). */
  inlinePieces: boolean;
  /** Bytes of rows the body sends when it sends them all from memory (it reads nothing); else undefined. */
  rowsInMemory: number | undefined;
  /** Bytes of the body produced so far (only as fast as the client takes them). */
  readonly progress: { readonly bytes: number };
}
