/**
 * Central metrics (Prometheus): requests by route and outcome with latency, snapshot
 * work, audit write failures. One registry per app; labels are low-cardinality (no MAC).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { STALE_BUCKETS_HOURS, type FleetCounts } from './fleet/repo/device-admin.ts';
import { registerLogMetrics } from '../platform/log-metrics.ts';
import type { ReleaseRow } from './release/repo.ts';

export class CentralMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'dbupdate_central_http_requests_total',
    help: 'HTTP requests by route, method and status code',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'dbupdate_central_http_request_duration_seconds',
    help: 'HTTP request duration (to the last byte) by route',
    labelNames: ['route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly snapshots = new Counter({
    name: 'dbupdate_central_snapshots_total',
    help: 'Device-sync requests by outcome (served, unchanged, refused kinds, error, aborted)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly digestSeconds = new Histogram({
    name: 'dbupdate_central_snapshot_digest_seconds',
    help: 'Time to compute the manifest (counts and hashes of the scope)',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly sendSeconds = new Histogram({
    name: 'dbupdate_central_snapshot_send_seconds',
    help: 'Time from the manifest to the last byte of the snapshot stream, by outcome',
    labelNames: ['outcome'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });
  readonly digestCache = new Counter({
    name: 'dbupdate_central_digest_cache_total',
    help: "Manifest digests: hit (cached, no row read), own_row (shared tables cached, own row read in a batch), batched (shared tables read with other locations', then the own row), shared or miss (in a session)",
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly bytesFromTableCache = new Counter({
    name: 'dbupdate_central_table_cache_bytes_total',
    help: 'Bytes of table rows served from the content-addressed table cache instead of read from PostgreSQL',
    registers: [this.registry],
  });
  readonly snapshotSessions = new Counter({
    name: 'dbupdate_central_snapshot_sessions_total',
    help: 'Snapshot read transactions opened (each holds a snapshot connection and slot); unchanged answers from the cache open none',
    registers: [this.registry],
  });
  readonly snapshotReads = new Counter({
    name: 'dbupdate_central_snapshot_reads_total',
    help: 'Snapshot sessions by the database read (replica, primary) and why (primary: no replica set; replica_behind, replica_down: failed over)',
    labelNames: ['database', 'reason'] as const,
    registers: [this.registry],
  });
  readonly credentialChecks = new Counter({
    name: 'dbupdate_central_credential_checks_total',
    help: 'Device credentials checked, by where the answer came from (the cache, or computed)',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });
  readonly rowsServed = new Counter({
    name: 'dbupdate_central_rows_served_total',
    help: 'Rows sent in snapshots',
    registers: [this.registry],
  });
  readonly pieceFetches = new Counter({
    name: 'dbupdate_central_piece_fetches_total',
    help: 'Piece fetches (POST /api/device-sync/pieces) by outcome (served, refused, error, aborted)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly piecesServed = new Counter({
    name: 'dbupdate_central_pieces_total',
    help: 'Pieces answered, sent or gone (their data changed since the manifest)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly bytesServed = new Counter({
    name: 'dbupdate_central_bytes_served_total',
    help: 'Uncompressed snapshot bytes sent',
    registers: [this.registry],
  });
  readonly acks = new Counter({
    name: 'dbupdate_central_acks_total',
    help: "Acknowledgements taken, by the edge's result and the error code it reported (HASH_MISMATCH, …)",
    labelNames: ['result', 'code'] as const,
    registers: [this.registry],
  });
  readonly rateLimitStoreErrors = new Counter({
    name: 'dbupdate_central_rate_limit_store_errors_total',
    help: 'Budget checks Redis did not answer (counted in process instead)',
    registers: [this.registry],
  });
  readonly auditFailures = new Counter({
    name: 'dbupdate_central_audit_write_failures_total',
    help: 'Audit rows that could not be written',
    registers: [this.registry],
  });

  #fleet: (() => Promise<FleetCounts>) | undefined;
  #fleetRead: { at: number; counts: Promise<FleetCounts> } | undefined;
  readonly devices: Gauge<'enabled'> = new Gauge({
    name: 'dbupdate_central_devices',
    help: 'Devices in the fleet, enabled or not',
    labelNames: ['enabled'] as const,
    registers: [this.registry],
    collect: async () => {
      const counts = await this.#fleetCounts();
      if (!counts) return;
      this.devices.set({ enabled: 'true' }, counts.enabled);
      this.devices.set({ enabled: 'false' }, counts.disabled);
    },
  });
  readonly fleetStates: Gauge<'state'> = new Gauge({
    name: 'dbupdate_central_devices_by_state',
    help: 'Enabled devices that never synced (no successful acknowledgement yet: not stale, and no stale alert), and those whose last verify reported drift',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: async () => {
      const counts = await this.#fleetCounts();
      if (!counts) return;
      this.fleetStates.set({ state: 'never_synced' }, counts.neverSynced);
      this.fleetStates.set({ state: 'drifted' }, counts.drifted);
    },
  });
  readonly staleDevices: Gauge<'hours'> = new Gauge({
    name: 'dbupdate_central_stale_devices',
    help: 'Enabled devices that synced once but have no successful acknowledgement in the last `hours` hours (1, 6, 24)',
    labelNames: ['hours'] as const,
    registers: [this.registry],
    collect: async () => {
      const counts = await this.#fleetCounts();
      if (!counts) return;
      for (const h of STALE_BUCKETS_HOURS) this.staleDevices.set({ hours: String(h) }, counts.stale[h]);
    },
  });

  readonly answersHeld = new Counter({
    name: 'dbupdate_central_answers_held_total',
    help: 'Answers that told a device to keep what it holds, by reason (paused, guard): docs/releases.md',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly release: Gauge<'state'> = new Gauge({
    name: 'dbupdate_central_release',
    help: 'Release control: paused (1 while frozen), paused_seconds (how long), freeze_alert_seconds (RELEASE_FREEZE_ALERT_MINUTES), guard_tripped (1 while a mass change waits for approve or reject), rollout_running, rollout_paused (1 while a rollout is paused by its failures)',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: () => {
      const row = this.#release?.();
      if (!row) return;
      const paused = row.paused_at === null ? 0 : (Date.now() - row.paused_at.getTime()) / 1000;
      this.release.set({ state: 'paused' }, row.paused_at === null ? 0 : 1);
      this.release.set({ state: 'paused_seconds' }, Math.max(0, paused));
      this.release.set({ state: 'freeze_alert_seconds' }, this.#freezeAlertSeconds);
      this.release.set({ state: 'guard_tripped' }, row.guard === 'tripped' ? 1 : 0);
      const rolling = row.rollout_started_at !== null && row.rollout_ended_at === null;
      this.release.set({ state: 'rollout_running' }, rolling ? 1 : 0);
      // Paused by a rollout's failures (release/rollout.ts), not by an operator.
      this.release.set({ state: 'rollout_paused' }, row.paused_by === 'central:rollout' ? 1 : 0);
    },
  });
  #release: (() => ReleaseRow | undefined) | undefined;
  #freezeAlertSeconds = 0;

  constructor(options: { defaults?: boolean } = {}) {
    if (options.defaults !== false) collectDefaultMetrics({ register: this.registry });
    registerLogMetrics(this.registry);
  }

  /** Where the release gauges come from: the gate's state in memory, and the setting the alert compares with. */
  observeRelease(read: () => ReleaseRow | undefined, freezeAlertSeconds: number): void {
    this.#release = read;
    this.#freezeAlertSeconds = freezeAlertSeconds;
  }

  /** Where the fleet gauges come from; read at most every 30 s, however many scrape. */
  observeFleet(read: () => Promise<FleetCounts>): void {
    this.#fleet = read;
  }

  async #fleetCounts(): Promise<FleetCounts | undefined> {
    if (!this.#fleet) return undefined;
    if (!this.#fleetRead || Date.now() - this.#fleetRead.at > 30_000)
      this.#fleetRead = { at: Date.now(), counts: this.#fleet() };
    // A database that is down leaves the gauges as they were; /readyz tells that story.
    return this.#fleetRead.counts.catch(() => undefined);
  }
}
