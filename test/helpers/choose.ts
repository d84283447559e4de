/**
 * A device-sync request's choice of answer (src/central/sync/decide.ts) without a route or a
 * session: what it answers from memory, after its own-row step if the planner takes one;
 * undefined where it would open a snapshot session.
 */
import type { TableDigest } from '../../src/contract/canonical.ts';
import type { DataModel } from '../../src/contract/data-model.ts';
import type { Piece } from '../../src/contract/pieces.ts';
import { Admission } from '../../src/central/sync/admission.ts';
import { AnswerScope } from '../../src/central/sync/answer-scope.ts';
import { chooseAnswer } from '../../src/central/sync/decide.ts';
import type { SyncDeps, SyncInput } from '../../src/central/sync/deps.ts';
import type { Held } from '../../src/central/sync/scope/digests.ts';
import type { Device } from '../../src/central/model.ts';
import { createLogger } from '../../src/platform/logger.ts';

class WouldOpenSession extends Error {}

const UNBOUNDED = { max: 1000, answers: 1000, perDevice: 1000, queue: 0, waitMs: 0 };

export async function answerFromMemory(
  caches: Pick<SyncDeps, 'memory' | 'metrics' | 'ownRows'> & Partial<SyncDeps>,
  device: Device,
  model: DataModel,
  version: string,
  held: Held,
): Promise<
  | { tables: TableDigest[]; rows: boolean; pieces: ReadonlyMap<string, readonly Piece[]> | undefined }
  | undefined
> {
  const snapshots = {
    read: () => {
      throw new WouldOpenSession();
    },
  };
  try {
    const chosen = await chooseAnswer({
      deps: { ...caches, snapshots } as unknown as SyncDeps,
      input: { scope: new AnswerScope(new Admission(UNBOUNDED)) } as unknown as SyncInput,
      log: createLogger('test', 'silent'),
      device,
      model,
      version,
      held,
    });
    return { tables: chosen.tables, rows: chosen.pinned.size > 0, pieces: chosen.pieces };
  } catch (err) {
    if (err instanceof WouldOpenSession) return undefined;
    throw err;
  }
}
