/** Reading a whole snapshot response in tests (small scopes only). */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { TableHasher } from '../../src/contract/canonical.ts';
import { readSnapshot } from '../../src/contract/snapshot-reader.ts';
import { tableDef } from './tables.ts';
import type { Manifest } from '../../src/contract/wire.ts';

export interface ReadSnapshot {
  manifest: Manifest;
  tables: { name: string; rowCount: number; columns: string[]; copyText: string }[];
}

export async function readWholeSnapshot(body: AsyncIterable<Uint8Array | string>): Promise<ReadSnapshot> {
  let manifest: Manifest | undefined;
  const tables: ReadSnapshot['tables'] = [];
  for await (const item of readSnapshot(body)) {
    if (item.type === 'manifest') manifest = item.manifest;
    if (item.type === 'table') {
      const parts: Buffer[] = [];
      for await (const part of item.rows) parts.push(part);
      tables.push({
        name: item.frame.table,
        rowCount: item.frame.rowCount,
        columns: item.frame.columns,
        copyText: Buffer.concat(parts).toString('utf8'),
      });
    }
  }
  if (!manifest) throw new Error('no manifest');
  return { manifest, tables };
}

/** Asserts that every table's served rows hash to what the snapshot's manifest says. */
export function assertRowsMatchManifest(s: ReadSnapshot): void {
  for (const t of s.tables) {
    const hasher = new TableHasher(tableDef(t.name));
    hasher.write(t.copyText);
    assert.deepEqual(
      hasher.digest(),
      s.manifest.tables.find((m) => m.name === t.name),
      `${t.name}: served rows hash to the manifest`,
    );
  }
}

export async function requestSnapshot(centralUrl: string, body: unknown, token?: string): Promise<Response> {
  return fetch(`${centralUrl}/api/device-sync/request`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
}

/** POSTs a Success ack of `manifest`, as an edge that loaded exactly its tables would. */
export async function ackSuccess(
  centralUrl: string,
  mac: string,
  manifest: Pick<Manifest, 'manifestId' | 'tables'>,
  token: string,
): Promise<Response> {
  return fetch(`${centralUrl}/api/device-sync/ack`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      manifestId: manifest.manifestId,
      mac,
      status: 'Success',
      localCounts: Object.fromEntries(manifest.tables.map((t) => [t.name, t.rowCount])),
      localChecksums: Object.fromEntries(manifest.tables.map((t) => [t.name, t.sha256])),
      durationMs: 5,
      error: null,
    }),
  });
}

/**
 * A snapshot request over raw HTTP (node:http, not fetch), to hold an answer open:
 * `read: false` leaves its body unread, so the answer keeps its slot until `close`;
 * `abortAfterMs` goes away before the answer comes. A request that fails has status 0.
 */
export function rawSnapshotRequest(
  url: string,
  mac: string,
  token: string | undefined,
  opts: { read?: boolean; abortAfterMs?: number } = {},
): Promise<{ status: number; close(): void }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const req = request(
      {
        host: hostname,
        port,
        method: 'POST',
        path: '/api/device-sync/request',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${token}`,
          'accept-encoding': 'identity',
        },
      },
      (res) => {
        if (opts.read === false) res.pause();
        else res.resume();
        resolve({ status: res.statusCode ?? 0, close: () => res.destroy() });
      },
    );
    req.on('error', () => resolve({ status: 0, close: () => undefined }));
    if (opts.abortAfterMs !== undefined) setTimeout(() => req.destroy(), opts.abortAfterMs);
    req.end(JSON.stringify({ mac }));
  });
}
