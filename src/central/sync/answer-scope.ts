/**
 * What one answer (a snapshot request or a piece fetch) holds, and the one place that gives it
 * all back: its slots and its device's claim (admission.ts), the snapshot session its body reads
 * in, and the audit that is finished with its outcome. The route makes one per request and
 * calls `close` exactly where the answer ends (the response closed, or a failure before it);
 * `close` runs once, however often called. Slots may go back earlier, through this object too,
 * when the answer no longer needs them: all of them once it reads and sends no rows, or once it
 * is one buffer (`answerMade`); the session's alone once its session closed after the digests
 * (`releaseSession`). Whatever is still held goes back in `close`:
 *
 * | order | what                     | why first                                                    |
 * |-------|--------------------------|--------------------------------------------------------------|
 * | 1     | the session is closed    | destroyed mid-COPY on a failure, so its connection is clean  |
 * | 2     | the slots are freed      | they bound sessions: free once the session is, not after I/O |
 * | 3     | the audit is finished    | a batched write, which waits for its batch                   |
 *
 * The service sets what finishing means as the answer gets further (`onEnd`): before its audit
 * row exists, nothing (the route audits the refusal); then the outcome of an error; once the
 * body is made, the outcome with the bytes sent.
 */
import type { Admission, SlotKind } from './admission.ts';
import type { SnapshotSession } from './sources/snapshot-session.ts';

/** All an answer does with its session: close it, with the failure that ended the answer, if any. */
type HeldSession = Pick<SnapshotSession, 'close'>;

/** How an answer ended: every byte handed to the client, or not (with the failure, if any). */
export interface AnswerEnd {
  sent: boolean;
  error?: Error | undefined;
}

export class AnswerScope {
  readonly #admission: Admission;
  #slots: ReturnType<Admission['forRequest']>;
  #session: HeldSession | undefined;
  #onEnd: (end: AnswerEnd) => Promise<void> = async () => {};
  #closed: Promise<void> | undefined;

  constructor(admission: Admission) {
    this.#admission = admission;
    this.#slots = admission.forRequest();
  }

  /** Counts the answer against its device's bound (once; RATE_LIMITED beyond it). */
  claim(deviceId: string): void {
    this.#slots.claim(deviceId);
  }

  /** Waits for a slot of `kind` (OVERLOADED when none comes in time). */
  async admit(kind: SlotKind, priority?: 'first' | 'normal'): Promise<void> {
    await this.#slots.take(kind, priority);
  }

  /** Gives back every slot and the claim early: the answer reads and sends no rows after all. */
  releaseSlots(): void {
    this.#slots.free();
    this.#slots = this.#admission.forRequest();
  }

  /**
   * The answer is made (one buffer, no more reading): its slots and claim go back now, unless it
   * still holds a session (a held answer's), whose slot goes back only once it is closed.
   */
  answerMade(): void {
    if (!this.#session) this.releaseSlots();
  }

  /** Gives back the session slot early: the session is closed, the answer goes on from memory. */
  releaseSession(): void {
    this.#slots.freeSession();
  }

  /** The session the body reads in, closed with the answer unless the body closed it first. */
  hold(session: HeldSession): void {
    this.#session = session;
  }

  /** What finishing the answer's audit means from now on. */
  onEnd(finish: (end: AnswerEnd) => Promise<void>): void {
    this.#onEnd = finish;
  }

  close(end: AnswerEnd): Promise<void> {
    this.#closed ??= this.#close(end);
    return this.#closed;
  }

  async #close(end: AnswerEnd): Promise<void> {
    const ok = end.sent && !end.error;
    try {
      await this.#session?.close(ok ? undefined : (end.error ?? new Error('response aborted')));
    } finally {
      this.#slots.free();
      await this.#onEnd(end);
    }
  }
}
