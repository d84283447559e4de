/**
 * One error handler for every Fastify app we run: everything becomes the documented
 * `{ error: { code, message } }` shape; 5xx never carry internals.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type {
  FastifyError,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifyServerOptions,
} from 'fastify';
import { AppError, isAppError, normalizeError, publicMessage, type ErrorCode } from './errors.ts';
import { SHED_CODES, ShedLog } from './shed-log.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The stable code of the error this request was answered with, for audit hooks. */
    errorCode?: ErrorCode;
  }
}

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID_INPUT',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_INPUT',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_INPUT',
};

/** Fastify's own errors by their codes; everything else through the one normaliser. */
export function toAppError(err: FastifyError | Error): AppError {
  if (isAppError(err)) return err;
  const fastifyErr = err as FastifyError;
  if (fastifyErr.validation) return new AppError('INVALID_INPUT', err.message);
  const mapped = fastifyErr.code ? FASTIFY_CODES[fastifyErr.code] : undefined;
  if (mapped) return new AppError(mapped, err.message);
  if (err instanceof SyntaxError || (fastifyErr.statusCode !== undefined && fastifyErr.statusCode < 500)) {
    if (fastifyErr.statusCode === 413) return new AppError('BODY_TOO_LARGE', err.message);
    if (fastifyErr.statusCode === 415) return new AppError('UNSUPPORTED_MEDIA_TYPE', err.message);
    return new AppError('INVALID_INPUT', err.message);
  }
  return normalizeError(err);
}

/** The credential from `Authorization: Bearer <credential>` (the scheme in any case, RFC 9110), or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer +([A-Za-z0-9._~+/=-]{1,512})$/i.exec(header ?? '');
  return match?.[1];
}

const sha256 = (text: string) => createHash('sha256').update(text).digest();

/** A shared secret compared in constant time (over digests, so lengths leak nothing either). */
export function tokenMatches(expected: string, given: string | undefined): boolean {
  return given !== undefined && timingSafeEqual(sha256(given), sha256(expected));
}

/**
 * Whether a peer address or a URL's host name is this machine: `localhost`, 127.0.0.0/8,
 * `::1` (bracketed or not), or IPv4 loopback mapped into IPv6.
 */
export function isLoopback(hostOrAddress: string | undefined): boolean {
  if (hostOrAddress === undefined) return false;
  const host = hostOrAddress.replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || host === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(host);
}

function errorJson(code: ErrorCode, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

/** An error answer written straight to a socket that never reached Fastify, then closed. */
function endWithError(
  socket: Duplex,
  status: number,
  reason: string,
  code: ErrorCode,
  message: string,
): void {
  const body = errorJson(code, message);
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * What Node's HTTP parser refuses never reaches a route (a malformed request line, headers
 * too large: 431, a bad URL): these answer in the documented shape too, then close.
 */
const clientErrorHandler: NonNullable<FastifyServerOptions['clientErrorHandler']> = (err, socket: Socket) => {
  if (!socket.writable) return socket.destroy();
  const code = (err as { code?: string }).code;
  const [status, reason] =
    code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large']
      : code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout']
        : [400, 'Bad Request'];
  const errorCode: ErrorCode =
    status === 408 ? 'REQUEST_TIMEOUT' : status === 431 ? 'HEADERS_TOO_LARGE' : 'INVALID_INPUT';
  endWithError(socket, status, reason, errorCode, `the request could not be parsed (${code ?? 'malformed'})`);
};

/** Server options both services share: parser-level errors in our shape. */
export function serverOptions(): Pick<FastifyServerOptions, 'clientErrorHandler' | 'frameworkErrors'> {
  return {
    clientErrorHandler,
    frameworkErrors: (err, request, reply) => {
      request.errorCode = 'INVALID_INPUT';
      void (reply as FastifyReply)
        .status(400)
        .type('application/json; charset=utf-8')
        .send(errorJson('INVALID_INPUT', err.message));
    },
  };
}

/** How much of an oversized body is read and thrown away, so the 413 arrives instead of a reset. */
const DISCARD_BYTES = 16 * 1024 * 1024;
const DISCARD_MS = 10_000;

/**
 * Closing a socket with unread bytes in it makes the kernel send a reset, which can reach
 * the client before our 413 does. So the rest of the body is read and dropped first, up
 * to a bound (as nginx's lingering close does); beyond it, the connection is closed.
 */
function discardBody(raw: IncomingMessage): Promise<void> {
  if (raw.complete || raw.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let seen = 0;
    const done = () => {
      clearTimeout(timer);
      raw.removeListener('data', onData);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > DISCARD_BYTES) done();
    };
    const timer = setTimeout(done, DISCARD_MS);
    raw.on('data', onData).once('end', done).once('error', done).once('close', done);
    raw.resume();
  });
}

/** CONNECT never reaches a route; without a listener Node would drop the socket unanswered. */
function refuseConnect(_request: IncomingMessage, socket: Duplex): void {
  socket.on('error', () => {});
  endWithError(socket, 400, 'Bad Request', 'INVALID_INPUT', 'CONNECT is not supported: this is not a proxy');
}

export function installErrorHandling(app: FastifyInstance): void {
  if (app.server.listenerCount('connect') === 0) app.server.on('connect', refuseConnect);
  // Only JSON bodies are part of the API: text/plain is refused with 415, not parsed and refused with 400.
  app.removeContentTypeParser('text/plain');
  const shed = new ShedLog(app.log);
  app.addHook('onClose', async () => shed.close());
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const appErr = toAppError(err);
    request.errorCode = appErr.code;
    if (SHED_CODES.has(appErr.code)) {
      shed.count(appErr.code);
    } else if (appErr.status >= 500) {
      request.log.error({ err, code: appErr.code }, 'request failed');
    } else {
      request.log.info({ code: appErr.code, reason: appErr.message }, 'request refused');
    }
    if (appErr.code === 'BODY_TOO_LARGE') {
      reply.header('connection', 'close');
      return discardBody(request.raw).then(() =>
        reply.status(413).send({ error: { code: appErr.code, message: appErr.message } }),
      );
    }
    const retryAfter = appErr.details?.retryAfterSeconds;
    if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
    else if (appErr.code === 'DATABASE_UNAVAILABLE' || appErr.code === 'NOT_READY')
      reply.header('retry-after', '5');
    return reply.status(appErr.status).send({ error: { code: appErr.code, message: publicMessage(appErr) } });
  });
  app.setNotFoundHandler((request, reply) => {
    request.errorCode = 'ROUTE_NOT_FOUND';
    return reply
      .status(404)
      .send({ error: { code: 'ROUTE_NOT_FOUND', message: `no route ${request.method} ${request.url}` } });
  });
}
