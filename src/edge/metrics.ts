/**
 * Edge metrics (Prometheus). One registry per service instance, so several edges in
 * one process (tests, the simulator) never share counters. Labels stay low-cardinality.
 */
import type { LoadMode } from './repo/tables.ts';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { registerLogMetrics } from '../platform/log-metrics.ts';
import type { SyncResult } from './model.ts';

interface LiveSource {
  breakerState(): string;
  pendingAcks(): Promise<number>;
  /** From the ledger, so the gauge is right from the first scrape after a restart. */
  lastSuccessAt(): Promise<Date | undefined>;
}

const LOAD_MODES: readonly LoadMode[] = ['replica', 'deferred', 'whole'];

export class EdgeMetrics {
  readonly registry = new Registry();

  recordVerify(drifted: number): void {
    this.driftedTables.set(drifted);
    this.lastVerify.set(Date.now() / 1000);
  }

  /** The load mode in use, 1; the others 0. */
  recordLoadMode(mode: LoadMode): void {
    for (const m of LOAD_MODES) this.loadMode.set({ mode: m }, m === mode ? 1 : 0);
  }

  readonly syncs = new Counter({
    name: 'dbupdate_edge_syncs_total',
    help: 'Syncs by result and error code',
    labelNames: ['result', 'code'] as const,
    registers: [this.registry],
  });
  readonly schemaMismatches = new Counter({
    name: 'dbupdate_edge_schema_version_mismatches_total',
    help: 'Manifests refused because their schema version differs from this edge',
    registers: [this.registry],
  });
  readonly lastSuccess: Gauge = new Gauge({
    name: 'dbupdate_edge_last_success_timestamp_seconds',
    help: 'Unix time of the last successful or unchanged sync (0: never); read from the ledger',
    registers: [this.registry],
    collect: async () => {
      const at = await this.#source?.lastSuccessAt().catch(() => undefined);
      if (at) this.lastSuccess.set(at.getTime() / 1000);
    },
  });
  readonly duration = new Histogram({
    name: 'dbupdate_edge_sync_duration_seconds',
    help: 'Sync duration by result',
    labelNames: ['result'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });
  readonly driftedTables = new Gauge({
    name: 'dbupdate_edge_drifted_tables',
    help: 'Tables the last scheduled verify found different from the last applied manifest (VERIFY_INTERVAL_SECONDS)',
    registers: [this.registry],
  });
  readonly lastVerify = new Gauge({
    name: 'dbupdate_edge_last_verify_timestamp_seconds',
    help: 'Unix time of the last scheduled verify (0: none yet)',
    registers: [this.registry],
  });
  readonly loadMode = new Gauge({
    name: 'dbupdate_edge_load_mode',
    help: "How this edge's database user may load a table alone (1 for the mode in use): replica, deferred, or whole (no deltas: every change reloads every table)",
    labelNames: ['mode'] as const,
    registers: [this.registry],
  });
  readonly rowsLoaded = new Counter({
    name: 'dbupdate_edge_rows_loaded_total',
    help: 'Rows loaded by COPY',
    registers: [this.registry],
  });

  readonly tableLoadSeconds = new Histogram({
    name: 'dbupdate_edge_table_load_seconds',
    help: 'Time to COPY one table of a snapshot into the local database',
    labelNames: ['table'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly pieces = new Counter({
    name: 'dbupdate_edge_pieces_total',
    help: 'Pieces of tables to load, by where they came from: fetched, reused from staging (a resumed transfer), kept in place (a delta), refetched after failing their hash',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });
  readonly bytesReceived = new Counter({
    name: 'dbupdate_edge_received_bytes_total',
    help: 'Bytes of snapshot and pieces answers received from Central (decompressed)',
    registers: [this.registry],
  });
  readonly resumes = new Counter({
    name: 'dbupdate_edge_transfer_resumes_total',
    help: 'Piece fetches beyond the first of a sync: transfers resumed after a cut',
    registers: [this.registry],
  });
  readonly tableRowsLoaded = new Counter({
    name: 'dbupdate_edge_table_rows_loaded_total',
    help: 'Rows loaded by COPY, by table',
    labelNames: ['table'] as const,
    registers: [this.registry],
  });
  #source: LiveSource | undefined;
  readonly breakerOpen: Gauge = new Gauge({
    name: 'dbupdate_edge_central_circuit_open',
    help: 'Circuit breaker towards Central: 0 closed, 1 open, 0.5 half-open (probing)',
    registers: [this.registry],
    collect: () => {
      const state = this.#source?.breakerState();
      this.breakerOpen.set(state === 'open' || state === 'isolated' ? 1 : state === 'half-open' ? 0.5 : 0);
    },
  });
  readonly pendingAcks: Gauge = new Gauge({
    name: 'dbupdate_edge_pending_acks',
    help: 'Acknowledgements kept locally until Central takes them',
    registers: [this.registry],
    collect: async () => {
      if (this.#source) this.pendingAcks.set(await this.#source.pendingAcks().catch(() => NaN));
    },
  });

  constructor(options: { defaults?: boolean } = {}) {
    if (options.defaults !== false) collectDefaultMetrics({ register: this.registry });
    registerLogMetrics(this.registry);
  }

  /** Gauges read at scrape time from the live service. */
  observe(source: LiveSource): void {
    this.#source = source;
  }

  recordTableLoad(table: string, rows: number, seconds: number): void {
    this.tableLoadSeconds.observe({ table }, seconds);
    this.tableRowsLoaded.inc({ table }, rows);
  }

  record(result: SyncResult): void {
    const code = result.error?.code ?? '';
    this.syncs.inc({ result: result.status, code });
    this.duration.observe({ result: result.status }, result.durationMs / 1000);
    this.rowsLoaded.inc(result.rowsLoaded);
    if (result.status !== 'failed') this.lastSuccess.set(Date.now() / 1000);
    if (code === 'SCHEMA_VERSION_MISMATCH') this.schemaMismatches.inc();
    const t = result.transfer;
    if (t) {
      this.pieces.inc({ source: 'fetched' }, t.piecesFetched);
      this.pieces.inc({ source: 'reused' }, t.piecesReused);
      this.pieces.inc({ source: 'kept' }, t.piecesKept);
      this.pieces.inc({ source: 'refetched' }, t.piecesRefetched);
      this.bytesReceived.inc(t.bytesReceived);
      this.resumes.inc(Math.max(0, t.fetches - 1));
    }
  }
}
