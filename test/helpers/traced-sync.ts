/**
 * One first sync of a 40-user scope, for the tracing tests: Central sends no inline pieces, so
 * the pieces are fetched in a request of their own and that call is traced too. Import it after
 * `startTracing`, as the services import everything after it.
 */
import { capturedLog } from './log.ts';
import { startCentral, seedOneScope } from './central.ts';
import { createTestDatabase } from './db.ts';
import { edgeConfig } from './edge.ts';
import { loggerOptions } from '../../src/platform/logger.ts';
import { createSyncer } from '../../src/edge/syncer.ts';
import type { SyncResult } from '../../src/edge/model.ts';

export type Line = Record<string, unknown>;

export interface TracedSync {
  result: SyncResult;
  mac: string;
  centralLines: Line[];
  edgeLines: Line[];
  close(): Promise<void>;
}

/** The services' own logger settings, their lines read back. */
const capture = (service: string) =>
  capturedLog<Line>({ ...loggerOptions(service, 'debug'), transport: undefined });

export async function tracedSync(beforeSync: () => void = () => {}): Promise<TracedSync> {
  const central = await createTestDatabase('central');
  const edge = await createTestDatabase('edge');
  const { mac, token } = await seedOneScope(central, 40);
  const centralLog = capture('central-db-update-api');
  const edgeLog = capture('dbupdate-service');
  const api = await startCentral(central, { INLINE_PIECES_KB: '0' }, centralLog.logger);
  const syncer = createSyncer(edgeConfig(edge, api.url, mac, token), edge.pool, edgeLog.logger);
  beforeSync();
  const result = await syncer.run('cli');
  return {
    result,
    mac,
    centralLines: centralLog.lines,
    edgeLines: edgeLog.lines,
    async close() {
      await api[Symbol.asyncDispose]();
      await edge[Symbol.asyncDispose]();
      await central[Symbol.asyncDispose]();
    },
  };
}
