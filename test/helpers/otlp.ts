/**
 * A loopback OTLP/HTTP receiver for tests, with just enough protobuf decoding to read
 * the spans of an ExportTraceServiceRequest (field numbers from opentelemetry-proto).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, string>;
}

type Field = { no: number; wire: number; value: bigint | Buffer };

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const byte = buf[at++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return result;
    }
  };
  while (at < buf.length) {
    const key = Number(varint());
    const no = key >> 3;
    const wire = key & 7;
    if (wire === 0) {
      out.push({ no, wire, value: varint() });
    } else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4;
      out.push({ no, wire, value: buf.subarray(at, at + size) });
      at += size;
    } else if (wire === 2) {
      const len = Number(varint());
      out.push({ no, wire, value: buf.subarray(at, at + len) });
      at += len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

const sub = (list: Field[], no: number) => list.filter((f) => f.no === no).map((f) => f.value as Buffer);
const text = (list: Field[], no: number) => sub(list, no)[0]?.toString('utf8') ?? '';
const hex = (list: Field[], no: number) => sub(list, no)[0]?.toString('hex') ?? '';

/** KeyValue list → { key: string value } (string values only, which is all we assert on). */
function attributes(list: Buffer[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const f = fields(kv);
    const any = sub(f, 2)[0];
    if (any) out[text(f, 1)] = text(fields(any), 1);
  }
  return out;
}

export function decodeTraces(body: Buffer): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const resourceSpans of sub(fields(body), 1)) {
    const rs = fields(resourceSpans);
    const resource = sub(rs, 1)[0];
    const service = resource ? (attributes(sub(fields(resource), 1))['service.name'] ?? '') : '';
    for (const scopeSpans of sub(rs, 2)) {
      for (const span of sub(fields(scopeSpans), 2)) {
        const s = fields(span);
        spans.push({
          service,
          traceId: hex(s, 1),
          spanId: hex(s, 2),
          parentSpanId: hex(s, 4),
          name: text(s, 5),
          kind: Number(s.find((f) => f.no === 6)?.value ?? 0n),
          attributes: attributes(sub(s, 9)),
        });
      }
    }
  }
  return spans;
}

export interface OtlpReceiver {
  url: string;
  spans: ReceivedSpan[];
  contentTypes: string[];
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const receiver = { url: '', spans: [] as ReceivedSpan[], contentTypes: [] as string[] };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      if (req.url === '/v1/traces') {
        receiver.contentTypes.push(req.headers['content-type'] ?? '');
        receiver.spans.push(...decodeTraces(body));
      }
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    ...receiver,
    get spans() {
      return receiver.spans;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
