/**
 * What the OTEL_* variables ask of tracing, read the same way whether the SDK is loaded
 * (`tracing-sdk.ts`) or not (`tracing.ts`, `trace-ids.ts`): a bad name fails at start with
 * CONFIG_INVALID in both.
 */
import { AppError } from './errors.ts';

export interface Tracing {
  /** Where spans go: 'otlp', 'console', 'memory' (tests) or 'none'. */
  readonly exporter: string;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
export type SamplerName = (typeof SAMPLERS)[number];

/** The sampler OTEL_TRACES_SAMPLER names, checked also when nothing is exported. */
export function samplerName(env: NodeJS.ProcessEnv): SamplerName | undefined {
  const name = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase();
  if (!name) return undefined;
  if ((SAMPLERS as readonly string[]).includes(name)) return name as SamplerName;
  throw new AppError('CONFIG_INVALID', `OTEL_TRACES_SAMPLER: unsupported sampler ${JSON.stringify(name)}`);
}

/** The exporter the OTEL_* variables ask for; none unless an endpoint or exporter is named. */
export function exporterName(env: NodeJS.ProcessEnv): 'none' | 'console' | 'otlp' {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const name = (env.OTEL_TRACES_EXPORTER ?? (endpoint ? 'otlp' : 'none')).trim().toLowerCase();
  if (name === 'none' || name === 'console' || name === 'otlp') return name;
  throw new AppError('CONFIG_INVALID', `OTEL_TRACES_EXPORTER: unsupported exporter ${JSON.stringify(name)}`);
}

/** OTEL_TRACES_SAMPLER_ARG as a ratio sampler takes it: between 0 and 1, 1 when unset or not a number. */
export function samplerRatio(env: NodeJS.ProcessEnv): number {
  const ratio = Number(env.OTEL_TRACES_SAMPLER_ARG ?? '1');
  return Number.isFinite(ratio) ? Math.min(Math.max(ratio, 0), 1) : 1;
}

/** Probes and scrapes would drown the traces that matter. */
const UNTRACED_PATHS = new Set(['/metrics', '/healthz', '/readyz', '/livez']);

/** Whether a request is a probe or a scrape, which no span is made for. */
export const isUntraced = (req: { url?: string | undefined }): boolean =>
  UNTRACED_PATHS.has((req.url ?? '').split('?')[0]!);
