/** What the two streaming routes (snapshot and pieces) share: the error responses and the slow-reader cut. */
import type { ServerResponse } from 'node:http';
import { ErrorBody } from '../../contract/wire.ts';

/**
 * A client that stops reading, or reads a few bytes a second, holds a snapshot slot, a
 * connection and a read transaction: enough of them deny service to the fleet. The body
 * is produced only as fast as the client takes it (backpressure), so its progress is the
 * reader's: below the floor for a whole window, the response is cut.
 */
export function cutSlowReader(
  response: ServerResponse,
  progress: { readonly bytes: number },
  floor: { minBytes: number; windowMs: number },
  onCut: (err: Error) => void,
): NodeJS.Timeout {
  let seen = 0;
  const timer = setInterval(() => {
    if (progress.bytes - seen < floor.minBytes && !response.writableEnded) {
      const err = new Error(`client read ${progress.bytes - seen} bytes in ${floor.windowMs} ms; cut`);
      onCut(err);
      response.destroy(err);
    }
    seen = progress.bytes;
  }, floor.windowMs);
  timer.unref();
  return timer;
}

export const errors = {
  400: ErrorBody,
  401: ErrorBody,
  403: ErrorBody,
  404: ErrorBody,
  409: ErrorBody,
  413: ErrorBody,
  429: ErrorBody,
  503: ErrorBody,
};
