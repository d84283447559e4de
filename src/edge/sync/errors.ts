/**
 * The sync's failures that code must tell apart inside one AppError code. Their code stays
 * the one the ledger, the ack and Central have always been told (docs/errors.md); the
 * reason is a stable word beside it, kept in the ledger's error_reason column (migration
 * 0007), so no decision reads a message's text.
 *
 * | reason             | code             | who decides by it                                   |
 * |--------------------|------------------|-----------------------------------------------------|
 * | KEPT_TABLES_BROKEN | SNAPSHOT_INVALID | the next sync: the data held is in doubt (plan.ts)  |
 * | STALLED            | SNAPSHOT_INVALID | the transfer: a stall is resumed like a cut         |
 *
 * A new reason: add it here, throw a SyncError with it, and read it with reasonOf.
 */
import { AppError, type ErrorCode } from '../../platform/errors.ts';

export type SyncReason = 'KEPT_TABLES_BROKEN' | 'STALLED';

export class SyncError extends AppError {
  readonly reason: SyncReason;

  constructor(
    code: ErrorCode,
    reason: SyncReason,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(code, message, options);
    this.reason = reason;
  }
}

export function reasonOf(err: unknown): SyncReason | undefined {
  return err instanceof SyncError ? err.reason : undefined;
}

/**
 * A snapshot that breaks foreign keys against tables the edge kept may be the kept rows'
 * fault as much as the sent ones': its message starts so (operators read it in the ledger).
 */
export function keptTablesBroken(violated: string): SyncError {
  return new SyncError(
    'SNAPSHOT_INVALID',
    'KEPT_TABLES_BROKEN',
    `snapshot breaks foreign keys against tables this edge kept: ${violated}`,
  );
}
