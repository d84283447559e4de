/** Log shipping counters, the same in both services: events sent to Seq and dropped. */
import { Counter, Gauge, type Registry } from 'prom-client';
import { seqStats } from './seq.ts';

/** Counters that mirror totals kept elsewhere: set from the source at scrape time. */
function mirroredCounter(registry: Registry, name: string, help: string, read: () => number): void {
  const counter: Counter = new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      counter.reset();
      counter.inc(read());
    },
  });
}

export function registerLogMetrics(registry: Registry): void {
  mirroredCounter(
    registry,
    'dbupdate_log_events_sent_total',
    'Log events Seq accepted',
    () => seqStats().sent,
  );
  mirroredCounter(
    registry,
    'dbupdate_log_events_dropped_total',
    'Log events dropped because the Seq buffer was full or Seq refused them',
    () => seqStats().dropped,
  );
  mirroredCounter(
    registry,
    'dbupdate_log_shipping_failures_total',
    'Requests to Seq that failed (timeouts, refusals, errors)',
    () => seqStats().failedRequests,
  );
  const buffered: Gauge = new Gauge({
    name: 'dbupdate_log_events_buffered',
    help: 'Log events waiting to be sent to Seq',
    registers: [registry],
    collect() {
      buffered.set(seqStats().buffered);
    },
  });
}
