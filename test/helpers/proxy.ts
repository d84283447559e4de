/**
 * A fault-injecting HTTP proxy on loopback, between Edge and Central. Tests switch
 * its fault; each fault acts on whole (small) responses.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseSigningKey, signManifest } from '../../src/contract/signing.ts';
import { TEST_KEYS } from './keys.ts';

export type Fault =
  | { kind: 'none' }
  | { kind: 'truncate'; keepBytes: number }
  | { kind: 'replace'; from: string; to: string }
  | {
      kind: 'manifest';
      edit: (manifest: Record<string, unknown>) => void;
      /** false: keep Central's signature over the edited manifest (a forgery). */
      resign?: boolean;
      dropSignature?: boolean;
    }
  | { kind: 'stall'; afterBytes: number }
  | { kind: 'content-type'; value: string }
  | { kind: 'status'; status: number; retryAfter: string; times: number }
  | { kind: 'fail-ack'; times: number }
  /** Keeps Central's answer in `recorded` and withholds it from the edge (a cut connection). */
  | { kind: 'record'; recorded?: { contentType: string; body: Buffer } }
  /** Answers the next snapshot requests with a recorded answer, Central unasked. */
  | { kind: 'replay'; recorded: { contentType: string; body: Buffer } }
  /** Passes the answer on in `chunks` pieces, one every `everyMs`: a slow, steady link. */
  | { kind: 'drip'; chunks: number; everyMs: number }
  /** Changes one character of the first row of the next `times` pieces answers: the piece fails its hash. */
  | { kind: 'corrupt-piece'; times: number }
  /** Streams Central's answer on at `bytesPerSecond`, reading it only as fast: Central stays mid-stream. */
  | { kind: 'throttle'; bytesPerSecond: number };

export interface FaultProxy {
  url: string;
  fault: Fault;
  requests: number;
  /** Bytes of snapshot bodies passed on by the throttle so far. */
  relayed: number;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const state: FaultProxy = {
    url: '',
    fault: { kind: 'none' },
    requests: 0,
    relayed: 0,
    close: async () => {},
  };
  const server: Server = createServer(async (req, res) => {
    state.requests++;
    const parts: Buffer[] = [];
    for await (const c of req) parts.push(c as Buffer);
    const fault = state.fault;
    if (fault.kind === 'fail-ack' && req.url?.includes('/ack') && fault.times > 0) {
      fault.times--;
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' });
      res.end('{"error":{"code":"DATABASE_UNAVAILABLE","message":"injected"}}');
      return;
    }
    if (fault.kind === 'status' && req.url?.includes('/request') && fault.times > 0) {
      fault.times--;
      res.writeHead(fault.status, { 'content-type': 'application/json', 'retry-after': fault.retryAfter });
      res.end('{"error":{"code":"RATE_LIMITED","message":"injected"}}');
      return;
    }
    if (fault.kind === 'replay' && req.url?.includes('/request')) {
      res.writeHead(200, { 'content-type': fault.recorded.contentType });
      res.end(fault.recorded.body);
      return;
    }
    // A Central that is gone is a refused connection to the edge too.
    const upstream = await fetch(target + req.url, {
      method: req.method,
      headers: {
        'content-type': req.headers['content-type'] ?? 'application/json',
        authorization: req.headers.authorization ?? '',
        'accept-encoding': 'identity',
      },
      body: parts.length > 0 ? Buffer.concat(parts) : null,
    }).catch(() => undefined);
    if (!upstream) {
      res.destroy();
      return;
    }
    const rowsUrl = req.url?.includes('/request') || req.url?.includes('/pieces');
    if (fault.kind === 'throttle' && rowsUrl && upstream.ok && upstream.body) {
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? '' });
      const reader = upstream.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done || res.destroyed) break;
          res.write(value);
          state.relayed += value.length;
          await new Promise((r) => setTimeout(r, (value.length / fault.bytesPerSecond) * 1000));
        }
        res.end();
      } catch {
        res.destroy(); // Central cut its stream: so does the link
      }
      return;
    }
    let body = Buffer.from(await upstream.arrayBuffer());
    const isSnapshot = req.url?.includes('/request') && upstream.ok;
    // Rows come in the pieces answers; the manifest in the snapshot answer.
    const hasRows = (isSnapshot || req.url?.includes('/pieces')) && upstream.ok;
    if (fault.kind === 'corrupt-piece' && fault.times > 0 && req.url?.includes('/pieces') && upstream.ok) {
      fault.times--;
      // The first row starts after the first frame line; its first character is a hex digit of its key.
      const at = body.indexOf(0x0a) + 1;
      body = Buffer.from(body);
      body[at] = body[at] === 0x30 ? 0x31 : 0x30;
    }
    if (hasRows && fault.kind === 'replace')
      body = Buffer.from(body.toString('utf8').replace(fault.from, fault.to));
    if (isSnapshot && fault.kind === 'manifest') {
      const text = body.toString('utf8');
      const nl = text.indexOf('\n');
      const frame = JSON.parse(text.slice(0, nl)) as {
        manifest: Record<string, unknown>;
        signature?: unknown;
      };
      fault.edit(frame.manifest);
      // Re-signed with Central's key: the edge must catch the edit by its own checks.
      if (fault.resign !== false)
        frame.signature = signManifest(frame.manifest as never, parseSigningKey(TEST_KEYS.privateKey));
      if (fault.dropSignature) delete frame.signature;
      body = Buffer.from(JSON.stringify(frame) + text.slice(nl));
    }
    const headers: Record<string, string> = {
      'content-type':
        isSnapshot && fault.kind === 'content-type'
          ? fault.value
          : (upstream.headers.get('content-type') ?? ''),
    };
    if (isSnapshot && fault.kind === 'record') {
      fault.recorded = { contentType: headers['content-type']!, body };
      res.destroy();
      return;
    }
    if (isSnapshot && fault.kind === 'drip') {
      res.writeHead(upstream.status, headers);
      const size = Math.ceil(body.length / fault.chunks);
      for (let at = 0; at < body.length && !res.destroyed; at += size) {
        res.write(body.subarray(at, at + size));
        await new Promise((r) => setTimeout(r, fault.everyMs));
      }
      res.end();
      return;
    }
    if (isSnapshot && fault.kind === 'stall') {
      // Send the start of the body, then nothing, keeping the connection open.
      res.writeHead(upstream.status, headers);
      res.write(body.subarray(0, fault.afterBytes));
      return;
    }
    if (isSnapshot && fault.kind === 'truncate') {
      res.writeHead(upstream.status, headers);
      res.write(body.subarray(0, fault.keepBytes));
      // Cut the connection mid-body, as a network failure would.
      setTimeout(() => res.destroy(), 10);
      return;
    }
    res.writeHead(upstream.status, headers);
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}
