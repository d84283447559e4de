/**
 * What the edge tells Central about itself (docs/protocol.md, "Device reports"): its last
 * failed sync, which Central may never have seen (a certificate it did not trust, a manifest
 * signed by a key it does not know, a local load that failed), and what its last scheduled
 * verify found. Sent with a sync request only when it differs from the last report Central
 * took, so a healthy fleet's requests carry none.
 */
import { createHash } from 'node:crypto';
import { storableText, type DeviceReport } from '../../contract/wire.ts';
import type { Queryable } from '../../platform/db.ts';
import type { SyncState } from '../model.ts';
import { lastFailure } from '../repo/ledger.ts';

/** Longer texts are cut: the report is a pointer to the ledger, not a copy of it. */
const MESSAGE_MAX = 1000;

export interface PendingReport {
  report: DeviceReport;
  /** What to remember (SyncState.reportedSha256) once Central took it. */
  sha256: string;
}

/** The report to send with this request, or undefined when Central already has it. */
export async function pendingReport(db: Queryable, state: SyncState): Promise<PendingReport | undefined> {
  const failure = await lastFailure(db);
  const report: DeviceReport = {
    ...(failure
      ? {
          failure: {
            code: failure.code,
            message: storableText(failure.message.slice(0, MESSAGE_MAX)),
            at: failure.at.toISOString(),
          },
        }
      : {}),
    ...(state.driftCheckedAt
      ? {
          drift: {
            tables: state.driftTables ? state.driftTables.split(',') : [],
            checkedAt: state.driftCheckedAt,
          },
        }
      : {}),
  };
  if (!report.failure && !report.drift) return undefined;
  const sha256 = createHash('sha256').update(JSON.stringify(report)).digest('hex');
  return sha256 === state.reportedSha256 ? undefined : { report, sha256 };
}
