/**
 * Acknowledgements to Central. A failed ack never undoes a good load: it is kept in
 * edge_pending_acks and sent again before the next sync. Central stores an ack once,
 * so sending one twice is harmless.
 */
import type { AckBody } from '../../contract/wire.ts';
import type { Queryable } from '../../platform/db.ts';
import { isAppError } from '../../platform/errors.ts';
import type { Logger } from '../../platform/logger.ts';
import { step } from '../../platform/step.ts';
import {
  deletePendingAck,
  pendingAckAttempts,
  pendingAcks,
  savePendingAck,
  setAckStatus,
} from '../repo/ledger.ts';
import type { CentralClient } from './client.ts';
import type { AckOutcome } from '../model.ts';

const MAX_PENDING_ATTEMPTS = 50;

/** A refusal (4xx) will never succeed: it is recorded as failed, not retried. */
const refused = (err: unknown) => isAppError(err) && err.code === 'CENTRAL_REFUSED';

export async function acknowledge(
  db: Queryable,
  central: CentralClient,
  ack: AckBody,
  log: Logger,
): Promise<AckOutcome> {
  let outcome: AckOutcome;
  try {
    await step(log, 'sync.ack', { manifestId: ack.manifestId, status: ack.status }, () =>
      central.sendAck(ack),
    );
    outcome = 'sent';
  } catch (err) {
    outcome = refused(err) ? 'failed' : 'pending';
    log.warn({ event: 'sync.ack.kept', manifestId: ack.manifestId, ack: outcome }, `ack ${outcome}`);
    if (outcome === 'pending') await savePendingAck(db, ack, (err as Error).message);
  }
  await setAckStatus(db, ack.manifestId, outcome);
  return outcome;
}

export async function flushPendingAcks(db: Queryable, central: CentralClient, log: Logger): Promise<number> {
  let sent = 0;
  for (const ack of await pendingAcks(db, 20)) {
    try {
      await central.sendAck(ack);
      await deletePendingAck(db, ack.manifestId);
      await setAckStatus(db, ack.manifestId, 'sent');
      sent++;
    } catch (err) {
      if (refused(err)) {
        await deletePendingAck(db, ack.manifestId);
        await setAckStatus(db, ack.manifestId, 'failed');
      } else {
        await savePendingAck(db, ack, (err as Error).message);
        if ((await pendingAckAttempts(db, ack.manifestId)) >= MAX_PENDING_ATTEMPTS) {
          await deletePendingAck(db, ack.manifestId);
          await setAckStatus(db, ack.manifestId, 'failed');
        }
        log.warn(
          { event: 'sync.ack.retry', outcome: 'error', manifestId: ack.manifestId, err },
          'pending ack not sent yet',
        );
        break;
      }
    }
  }
  return sent;
}
