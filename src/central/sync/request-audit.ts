/**
 * The audit of one device-sync request: its `sync_requests` row is finished once, with
 * the outcome, whatever happened to the response; the request's step ends with it.
 */
import { ERROR_CODES, type AppError, type ErrorCode } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import { startStep, type OpenStep } from '../../platform/step.ts';
import type { CentralMetrics } from '../metrics.ts';
import type { RequestOutcome } from './repo/requests.ts';
import type { AuditStore } from './audit-store.ts';

const STATUS_FOR: Partial<Record<ErrorCode, RequestOutcome['status']>> = {
  INVALID_MAC: 'invalid_input',
  INVALID_INPUT: 'invalid_input',
  DEVICE_NOT_FOUND: 'unknown_device',
  DEVICE_DISABLED: 'disabled',
  UNAUTHENTICATED: 'unauthenticated',
  RATE_LIMITED: 'rate_limited',
  OVERLOADED: 'overloaded',
  SCHEMA_VERSION_UNSUPPORTED: 'unsupported_schema',
};

/** The audit status of a request answered with an error code and HTTP status. */
export function auditStatus(code: string | undefined, httpStatus: number): RequestOutcome['status'] {
  const known = code !== undefined && code in ERROR_CODES ? STATUS_FOR[code as ErrorCode] : undefined;
  if (known) return known;
  if (httpStatus === 401) return 'unauthenticated';
  return httpStatus < 500 ? 'invalid_input' : 'error';
}

export function outcomeForError(err: AppError): RequestOutcome {
  return {
    status: auditStatus(err.code, err.status),
    errorCode: err.code,
    reason: err.message.slice(0, 1000),
  };
}

export interface RequestAudit {
  /** Received → answered: the parent of every step of the request. */
  readonly step: OpenStep;
  finish(outcome: RequestOutcome): Promise<void>;
}

export function openRequestAudit(
  deps: { audit: AuditStore; metrics: CentralMetrics },
  requestId: string,
  log: Logger,
): RequestAudit {
  const started = performance.now();
  const whole = startStep(log, 'sync.request', { requestId });
  return {
    step: whole,
    async finish(outcome) {
      deps.metrics.snapshots.inc({ outcome: outcome.status });
      try {
        await deps.audit.finishRequest(requestId, {
          ...outcome,
          durationMs: Math.round(performance.now() - started),
        });
      } catch (err) {
        deps.metrics.auditFailures.inc();
        log.error(
          { err, event: 'audit.write', outcome: 'error', requestId },
          'could not finish the audit row',
        );
      }
      whole.annotate({ status: outcome.status, bytesSent: outcome.bytesSent });
      const ok = outcome.status === 'served' || outcome.status === 'unchanged' || outcome.status === 'held';
      const failure = Object.assign(new Error(outcome.reason ?? outcome.status), {
        code: outcome.errorCode ?? outcome.status,
      });
      whole.finish(ok ? undefined : failure);
    },
  };
}
