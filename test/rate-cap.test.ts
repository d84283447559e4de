/**
 * The download rate cap (DOWNLOAD_RATE_KBPS, issue 36 part 5; docs/releases.md) measured with
 * the link simulator (scripts/lib/link.ts): over a fast link, a capped edge draws the same
 * bytes as an uncapped one, but no faster than the cap (after its one-second burst), and says
 * so in /status. The bound is on the least time the sync may take, which a slower machine
 * only lengthens. It failed on the code before: the setting did not exist.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { buildEdge } from '../src/edge/server.ts';
import { createSyncer } from '../src/edge/syncer.ts';
import { startLink, type Link } from '../scripts/lib/link.ts';
import { oneScopeCentral } from './helpers/central.ts';
import { centralScopeRows, edgeConfig, edgeRows, quietLog } from './helpers/edge.ts';

const CAP_KBPS = 24;

describe('download rate cap', () => {
  const scope = oneScopeCentral(3000, { RATE_LIMIT_PER_DEVICE_PER_MINUTE: '1000' });
  const links: Link[] = [];
  after(async () => {
    for (const link of links) await link.close();
  });

  async function syncOverLink(env: Record<string, string>) {
    const central = new URL(scope.central.url);
    const link = await startLink(
      { host: central.hostname, port: Number(central.port) },
      { bitsPerSecond: 100e6, latencyMs: 0 },
    );
    links.push(link);
    const edge = await scope.newEdge();
    const config = edgeConfig(edge, link.url, scope.mac, scope.token, env);
    const syncer = createSyncer(config, edge.pool, quietLog, { initialDelayMs: 10 });
    const started = performance.now();
    const result = await syncer.run('cli');
    const seconds = (performance.now() - started) / 1000;
    assert.equal(result.status, 'success', JSON.stringify(result.error));
    assert.deepEqual(await edgeRows(edge.pool), await centralScopeRows(scope.centralDb.pool, scope.mac));
    const app = await buildEdge(config, edge.pool, syncer, false);
    const status = (await app.inject({ url: '/status' })).json<{ downloadRateKbps: number | null }>();
    await app.close();
    return { bytes: link.bytesDown, seconds, status };
  }

  it('draws the same bytes no faster than the cap, and shows the cap in /status', async () => {
    const free = await syncOverLink({});
    assert.equal(free.status.downloadRateKbps, null);
    const capped = await syncOverLink({ DOWNLOAD_RATE_KBPS: String(CAP_KBPS) });
    assert.equal(capped.status.downloadRateKbps, CAP_KBPS);
    const cap = CAP_KBPS * 1024;
    assert.ok(free.bytes > 3 * cap, `enough bytes to measure: ${free.bytes}`);
    assert.ok(
      Math.abs(capped.bytes - free.bytes) < 0.1 * free.bytes,
      `${capped.bytes} vs ${free.bytes} bytes`,
    );
    // One second of burst, then the cap; what sits in socket buffers is allowed 64 KB.
    const least = (capped.bytes - cap - 64 * 1024) / cap;
    assert.ok(
      capped.seconds >= least,
      `${capped.bytes} bytes in ${capped.seconds.toFixed(2)} s: ${(capped.bytes / 1024 / capped.seconds).toFixed(0)} KB/s over a cap of ${CAP_KBPS}`,
    );
    console.log(
      `rate cap: ${free.bytes} bytes uncapped in ${free.seconds.toFixed(2)} s; capped at ${CAP_KBPS} KB/s ${capped.bytes} bytes in ${capped.seconds.toFixed(2)} s (${(capped.bytes / 1024 / capped.seconds).toFixed(1)} KB/s)`,
    );
  });
});
