/**
 * The read transaction one snapshot is built in: opened before the digests so that the
 * manifest and the rows describe one instant, and closed exactly once by whichever ends
 * first, the body (when its last row is out, or it fails) or the response.
 */
import { COPY_SESSION_SETTINGS_SQL } from '../../../contract/tables.ts';
import type { Pool, PoolClient } from '../../../platform/db.ts';

export class SnapshotSession {
  readonly client: PoolClient;
  #closing: Promise<void> | undefined;

  private constructor(client: PoolClient) {
    this.client = client;
  }

  static async open(pool: Pool): Promise<SnapshotSession> {
    const client = await pool.connect();
    try {
      // One round trip (a simple query may hold several statements): a storm opens thousands.
      await client.query(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; ${COPY_SESSION_SETTINGS_SQL}`);
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
    return new SnapshotSession(client);
  }

  /**
   * Without `failure`, commits and gives the connection back. With one, the connection is
   * destroyed, not returned: it may be in the middle of a COPY that nobody will read.
   */
  close(failure?: Error): Promise<void> {
    this.#closing ??= failure ? Promise.resolve(this.client.release(failure)) : this.#end('COMMIT');
    return this.#closing;
  }

  /**
   * Before any statement of the session is left unread (the request failed while preparing
   * between statements): the connection stays usable. After a failure that may have left a
   * COPY running, `close(err)` instead.
   */
  rollback(): Promise<void> {
    this.#closing ??= this.#end('ROLLBACK');
    return this.#closing;
  }

  async #end(sql: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    try {
      await this.client.query(sql);
      this.client.release();
    } catch (err) {
      this.client.release(err as Error);
    }
  }
}
