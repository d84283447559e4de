/**
 * The snapshot answer up to its signed manifest, and the checks of that manifest before
 * anything is loaded. The answer's bytes pass through the attempt's stats (counted and
 * hashed) on their way to the reader.
 */
import { verifyManifest } from '../../contract/signing.ts';
import { readSnapshot, type SnapshotItem } from '../../contract/snapshot-reader.ts';
import { INLINE_PIECES_HEADER, type Manifest, type SyncRequestBody } from '../../contract/wire.ts';
import { AppError } from '../../platform/errors.ts';
import { step } from '../../platform/step.ts';
import { manifestApplied, setState } from '../repo/ledger.ts';
import type { Attempt } from './attempt.ts';
import { refuseStaleOrForeign, validateManifest } from './checks.ts';
import { pendingReport, type PendingReport } from './device-report.ts';
import { ManifestClock, newRequestNonce } from './manifest-clock.ts';

/** The snapshot stream, up to its signed manifest. */
export async function pull(a: Attempt): Promise<{ manifest: Manifest; items: AsyncGenerator<SnapshotItem> }> {
  const { deps } = a;
  const known = a.offer.hash ? (a.state.lastGlobalSha256 ?? null) : null;
  const nonce = newRequestNonce();
  const pending = await pendingReport(a.client, a.state);
  const asked = performance.now();
  a.body = await step(a.log, 'sync.pull', {}, () =>
    deps.central.requestSnapshot(
      snapshotRequest(a, known, nonce, pending),
      // Offering nothing, it loads every piece: they may as well come in this answer.
      known === null && !a.held ? { [INLINE_PIECES_HEADER]: '1' } : {},
      Date.now() + deps.deadlineMs,
    ),
  );
  const items = readSnapshot(a.stats.answer(a.body));
  const first = await items.next();
  if (first.done || first.value.type !== 'manifest') throw new AppError('SNAPSHOT_INVALID', 'no manifest');
  const signed = verifyManifest(first.value.manifest, first.value.signature, deps.publicKeys);
  if (signed !== 'ok') throw signatureRefusal(signed, first.value.signature?.keyId, deps.publicKeys);
  a.manifest = first.value.manifest;
  a.clock = new ManifestClock(a.manifest, nonce, asked);
  // Central answered, so it stored the report: not sent again until it changes.
  if (pending) await setState(a.client, { reportedSha256: pending.sha256 });
  const skew = a.clock.skewNote();
  if (skew) a.log.warn({ event: 'clock.skew', skewMs: a.clock.skewMs }, skew);
  return { manifest: a.manifest, items };
}

function snapshotRequest(
  a: Attempt,
  known: string | null,
  nonce: string,
  pending: PendingReport | undefined,
): SyncRequestBody {
  return {
    mac: a.deps.mac,
    knownGlobalSha256: known,
    pieces: true,
    nonce,
    ...(pending ? { report: pending.report } : {}),
    ...(a.held ? { knownTables: Object.fromEntries(a.held.tables.map((t) => [t.name, t.sha256])) } : {}),
  };
}

export async function validate(a: Attempt, m: Manifest): Promise<void> {
  validateManifest(m, a.deps.model);
  a.clock!.check('before it could be applied');
  refuseStaleOrForeign(m, a.state);
  if (await manifestApplied(a.client, m.manifestId)) {
    throw new AppError('MANIFEST_ALREADY_APPLIED', `manifest ${m.manifestId} was applied before`);
  }
}

/** Reads a snapshot answer to its end frame, which the reader checks. */
export async function drain(items: AsyncGenerator<SnapshotItem>): Promise<void> {
  for await (const _ of items) {
    /* to the end */
  }
}

/** Why a manifest's signature was refused, naming the keys when the edge trusts none that signed it. */
function signatureRefusal(
  result: 'unsigned' | 'unknown-key' | 'invalid',
  keyId: string | undefined,
  trusted: ReadonlyMap<string, unknown>,
): AppError {
  const why =
    result === 'unknown-key'
      ? `signed with key ${keyId}, which this edge does not trust (MANIFEST_PUBLIC_KEYS holds ${[...trusted.keys()].join(', ')}): ` +
        "add Central's public key, the MANIFEST_PUBLIC_KEYS line `dbupdate central keygen` printed with its MANIFEST_SIGNING_KEY"
      : result === 'unsigned'
        ? 'the manifest is unsigned'
        : `the signature by key ${keyId} does not match the manifest (changed on the way?)`;
  return new AppError('MANIFEST_SIGNATURE_INVALID', `manifest signature check failed: ${why}`);
}
