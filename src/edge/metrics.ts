/**
 * Edge metrics (Prometheus). One registry per service instance, so several edges in
 * one process (tests, the simulator) never share counters. Labels stay low-cardinality.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SyncResult } from './services/sync.ts';

export class EdgeMetrics {
  readonly registry = new Registry();
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
  readonly lastSuccess = new Gauge({
    name: 'dbupdate_edge_last_success_timestamp_seconds',
    help: 'Unix time of the last successful or unchanged sync',
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'dbupdate_edge_sync_duration_seconds',
    help: 'Sync duration by result',
    labelNames: ['result'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });
  readonly rowsLoaded = new Counter({
    name: 'dbupdate_edge_rows_loaded_total',
    help: 'Rows loaded by COPY',
    registers: [this.registry],
  });

  constructor(options: { defaults?: boolean } = {}) {
    if (options.defaults !== false) collectDefaultMetrics({ register: this.registry });
  }

  record(result: SyncResult): void {
    const code = result.error?.code ?? '';
    this.syncs.inc({ result: result.status, code });
    this.duration.observe({ result: result.status }, result.durationMs / 1000);
    this.rowsLoaded.inc(result.rowsLoaded);
    if (result.status !== 'failed') this.lastSuccess.set(Date.now() / 1000);
    if (code === 'SCHEMA_VERSION_MISMATCH') this.schemaMismatches.inc();
  }
}
