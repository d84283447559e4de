import { CentralMetrics } from '../../src/central/metrics.ts';
import { EdgeMetrics } from '../../src/edge/metrics.ts';

/** Every metric name Central and Edge export, for checks of what dashboards and alerts name. */
export async function exportedMetricNames(): Promise<Set<string>> {
  const exported = new Set<string>();
  for (const registry of [
    new CentralMetrics({ defaults: false }).registry,
    new EdgeMetrics({ defaults: false }).registry,
  ]) {
    for (const metric of await registry.getMetricsAsJSON()) exported.add(metric.name);
  }
  return exported;
}

/** `name` is exported, a histogram's `_bucket`, `_sum` and `_count` series included. */
export function isExported(exported: Set<string>, name: string): boolean {
  return exported.has(name.replace(/_(bucket|sum|count)$/, ''));
}
