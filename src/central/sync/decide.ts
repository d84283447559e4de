/**
 * The answer's digests and what to send them with: what memory knows (scope/digests.ts
 * recall), the planner's decision on it (planner.ts), and the one step that decision names,
 * asked again after a step that learns more. The slots follow the decision (taken and given
 * back through the request's AnswerScope): an answer slot while it reads or sends rows, a
 * session slot with a session, none for an answer without rows.
 */
import type { TableDigest } from '../../contract/canonical.ts';
import type { DataModel } from '../../contract/data-model.ts';
import type { Piece } from '../../contract/pieces.ts';
import type { Logger } from '../../platform/logger.ts';
import { step } from '../../platform/step.ts';
import type { Device } from '../model.ts';
import type { SyncDeps, SyncInput } from './deps.ts';
import { holdsAnswerSlot, plan } from './planner.ts';
import {
  lackedRows,
  piecesInSession,
  readOwnRow,
  recall,
  scopeDigests,
  type Held,
  type Recalled,
} from './scope/digests.ts';
import type { SnapshotSession } from './sources/snapshot-session.ts';

export interface Chosen {
  tables: TableDigest[];
  /** A rows edge: rows found in memory, held for the body. */
  pinned: ReadonlyMap<string, Buffer[]>;
  /** A pieces edge: the pieces of every table it lacks. */
  pieces: ReadonlyMap<string, readonly Piece[]> | undefined;
  /** Open while the body still reads rows in it; closed (its slot free) once the rows are in memory or come by pieces. */
  session: SnapshotSession | undefined;
}

interface Asking {
  deps: SyncDeps;
  input: SyncInput;
  log: Logger;
  device: Device;
  model: DataModel;
  version: string;
  held: Held;
}

/** How the digests came to be in memory, for dbupdate_central_digest_cache_total. */
type Source = 'hit' | 'own_row' | 'batched';

export async function chooseAnswer(a: Asking): Promise<Chosen> {
  const { deps, input, device } = a;
  let holding = false;
  let source: Source = 'hit';
  let ownRowRead = false;
  let memory = await step(a.log, 'scope.check', { deviceId: device.id }, async (open) => {
    const recalled = recall(deps, device, a.model, a.version, a.held);
    open.annotate({ cache: recalled.digests ? 'hit' : 'miss' });
    return recalled;
  });
  for (;;) {
    const decision = plan({ ...memory.known, batchReader: deps.sharedScopes !== undefined, ownRowRead });
    if (!holdsAnswerSlot(decision)) {
      if (holding) input.scope.releaseSlots();
      holding = false;
    } else if (!holding) {
      // An answer that reads or sends rows counts against its device's bound, and waits for a slot.
      input.scope.claim(device.id);
      await input.scope.admit('answer');
      holding = true;
    }
    if (decision.kind === 'session') return inSession(a);
    if (decision.kind !== 'own-row') {
      deps.metrics.digestCache.inc({ result: source });
      return {
        tables: memory.digests!,
        pinned: memory.pinned,
        pieces: piecesOf(a, memory),
        session: undefined,
      };
    }
    await step(a.log, 'scope.own_row', { deviceId: device.id }, async (open) =>
      open.annotate({ ...(await readOwnRow(deps, device, a.model, a.version, a.held, decision.batchFirst)) }),
    );
    ownRowRead = true;
    if (decision.batchFirst) source = 'batched';
    else source = 'own_row';
    memory = recall(deps, device, a.model, a.version, a.held);
  }
}

/** An unchanged pieces edge lacks no piece: an empty list, as for any table it holds. */
function piecesOf(a: Asking, memory: Recalled): ReadonlyMap<string, readonly Piece[]> | undefined {
  return a.held.pieces ? (memory.pieces ?? new Map()) : undefined;
}

/** Digests (and pieces) read in a snapshot session of the device's own, under a session slot. */
async function inSession(a: Asking): Promise<Chosen> {
  const { deps, input, device } = a;
  input.scope.claim(device.id);
  await input.scope.admit('session');
  deps.metrics.snapshotSessions.inc();
  // The session opens under the request's step; a scope.compute step for each read of it.
  const computed = await deps.snapshots.read(device, a.version, a.log, (opened) =>
    step(a.log, 'scope.compute', { deviceId: device.id, read: opened.reason }, async (open) => {
      const tx = opened.session.client;
      const { digests, cache } = await scopeDigests(deps, tx, device, a.model, opened.version);
      open.annotate({ cache });
      return {
        digests,
        pieces: a.held.pieces ? await piecesInSession(deps, tx, a.model, digests, a.held) : undefined,
      };
    }),
  );
  const { digests: tables, pieces } = computed.result;
  // A rows edge whose lacked tables the digest pass just kept (a small scope's are) is sent
  // them from memory, as a pieces edge is: each row is read once, and the session ends here.
  const pinned = a.held.pieces ? undefined : lackedRows(deps, tables, a.held);
  if (!a.held.pieces && !pinned) {
    input.scope.hold(computed.session);
    return { tables, pinned: new Map(), pieces, session: computed.session };
  }
  // The session (and, for a pieces edge, every slot) is done once the digests are, and is not
  // held while the manifest is stored (a batched write) and sent.
  await computed.session.close();
  if (pinned) input.scope.releaseSession();
  else input.scope.releaseSlots();
  return { tables, pinned: pinned ?? new Map(), pieces, session: undefined };
}
