/**
 * Where a snapshot is read: on the read replica (CENTRAL_READ_DATABASE_URL) when there is
 * one, it answers, and it has caught up with the device's scope; on the primary otherwise.
 * "Caught up" compares data versions, not clocks: the scope version read on the primary
 * with the request's audit row against the same version read in the replica's snapshot.
 * A replica behind it would serve data older than the primary already holds (and perhaps
 * older than the device holds), so that request reads the primary instead. A replica
 * that fails is skipped for a few seconds by a circuit breaker, then tried again.
 */
import { circuitBreaker, ConsecutiveBreaker, handleAll } from 'cockatiel';
import type { Pool } from '../../../platform/db.ts';
import type { Logger } from '../../../platform/logger.ts';
import { step } from '../../../platform/step.ts';
import type { CentralMetrics } from '../../metrics.ts';
import type { Device } from '../../model.ts';
import { setScopeAndReadVersion } from '../repo/scope.ts';
import { SnapshotSession } from './snapshot-session.ts';
import { replicaBehind } from '../scope/version.ts';

export type ReadReason = 'primary' | 'replica' | 'replica_behind' | 'replica_down' | 'replica_failed';

export interface OpenedSnapshot {
  session: SnapshotSession;
  /** The scope version this session sees (its digests are cached under it). */
  version: string;
  reason: ReadReason;
}

export class SnapshotSource {
  readonly #primary: Pool;
  readonly #replica: Pool | undefined;
  readonly #metrics: CentralMetrics;
  readonly #breaker = circuitBreaker(handleAll, {
    halfOpenAfter: 5_000,
    breaker: new ConsecutiveBreaker(3),
  });

  constructor(primary: Pool, replica: Pool | undefined, metrics: CentralMetrics) {
    this.#primary = primary;
    this.#replica = replica;
    this.#metrics = metrics;
  }

  /** A session scoped to `device`; `primaryVersion` is its scope version as the primary read it. */
  open(device: Device, primaryVersion: string, log: Logger): Promise<OpenedSnapshot> {
    return step(log, 'snapshot.open', {}, async (open) => {
      const opened = await this.#open(device, primaryVersion, log);
      open.annotate({ read: opened.reason });
      return opened;
    });
  }

  async #open(device: Device, primaryVersion: string, log: Logger): Promise<OpenedSnapshot> {
    const replica = this.#replica;
    if (!replica) return this.#onPrimary(device, 'primary');
    let session: SnapshotSession | undefined;
    let replicaVersion: string;
    try {
      session = await this.#breaker.execute(() => SnapshotSession.open(replica));
      replicaVersion = await setScopeAndReadVersion(session.client, device);
      if (!replicaBehind(primaryVersion, replicaVersion))
        return this.#opened(session, replicaVersion, 'replica');
      await session.rollback();
    } catch (err) {
      await session?.close(err as Error);
      log.warn({ event: 'snapshot.replica_down', err }, 'the read replica failed; reading the primary');
      return this.#onPrimary(device, 'replica_down');
    }
    log.info(
      { event: 'snapshot.replica_behind', primaryVersion, replicaVersion },
      'the replica has not caught up with this scope; reading the primary',
    );
    return this.#onPrimary(device, 'replica_behind');
  }

  /**
   * `work` in a session opened as `open` does. A replica session whose work fails in the
   * database (a query cancelled by a conflict with recovery, a replica restarting) is
   * closed and the work done again on the primary: the request is not lost to the replica.
   */
  async read<T>(
    device: Device,
    primaryVersion: string,
    log: Logger,
    work: (opened: OpenedSnapshot) => Promise<T>,
  ): Promise<OpenedSnapshot & { result: T }> {
    const opened = await this.open(device, primaryVersion, log);
    try {
      return { ...opened, result: await work(opened) };
    } catch (err) {
      const sqlState = (err as { code?: unknown }).code;
      if (opened.reason !== 'replica' || typeof sqlState !== 'string' || sqlState.length !== 5) {
        // Destroyed, not rolled back: the work may have failed mid-COPY (a row with no
        // canonical form), and a ROLLBACK queued behind a COPY nobody reads never runs.
        await opened.session.close(err as Error);
        throw err;
      }
      await opened.session.close(err as Error);
      log.warn(
        { event: 'snapshot.replica_failed', err },
        'the replica failed this snapshot; reading the primary',
      );
      const again = await this.#onPrimary(device, 'replica_failed');
      try {
        return { ...again, result: await work(again) };
      } catch (retryErr) {
        await again.session.close(retryErr as Error);
        throw retryErr;
      }
    }
  }

  /**
   * `work` in a session scoped to no device (a batch of locations, sync/scope/shared-scopes.ts):
   * on the replica when there is one and its breaker lets it, on the primary otherwise or
   * when the replica fails it. The caller compares the versions it reads with its requests'.
   */
  async batch<T>(work: (session: SnapshotSession) => Promise<T>): Promise<T> {
    const replica = this.#replica;
    let reason: ReadReason = 'primary';
    if (replica) {
      try {
        const session = await this.#breaker.execute(() => SnapshotSession.open(replica));
        this.#count('replica');
        return await this.#inSession(session, work);
      } catch {
        // As a request's session does: the replica is skipped, the primary answers.
        reason = 'replica_failed';
      }
    }
    const session = await SnapshotSession.open(this.#primary);
    this.#count(reason);
    return this.#inSession(session, work);
  }

  async #inSession<T>(session: SnapshotSession, work: (session: SnapshotSession) => Promise<T>): Promise<T> {
    try {
      const result = await work(session);
      await session.close();
      return result;
    } catch (err) {
      await session.close(err as Error);
      throw err;
    }
  }

  async #onPrimary(device: Device, reason: ReadReason): Promise<OpenedSnapshot> {
    const session = await SnapshotSession.open(this.#primary);
    try {
      return this.#opened(session, await setScopeAndReadVersion(session.client, device), reason);
    } catch (err) {
      await session.close(err as Error);
      throw err;
    }
  }

  #opened(session: SnapshotSession, version: string, reason: ReadReason): OpenedSnapshot {
    this.#count(reason);
    return { session, version, reason };
  }

  #count(reason: ReadReason): void {
    this.#metrics.snapshotReads.inc({ database: reason === 'replica' ? 'replica' : 'primary', reason });
  }
}
