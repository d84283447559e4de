import { Type } from 'typebox';
import { loadEdgeConfig, ReaderRoleSetting } from '../edge/config.ts';
import { prepareEdgeDatabase } from '../edge/migrations.ts';
import { createSyncer } from '../edge/syncer.ts';
import type { SyncResult } from '../edge/model.ts';
import { verifyLocal } from '../edge/verify/local.ts';
import { loadConfig, LogFormatSetting, LogLevelSetting, secret } from '../platform/config.ts';
import { setState } from '../edge/repo/ledger.ts';
import { AppError } from '../platform/errors.ts';
import { createLogger } from '../platform/logger.ts';
import { terminalProgress } from './progress.ts';
import { parseFlags, withPool, type Command } from './util.ts';

/** What the commands that only need the database read. */
export const DbSettings = Type.Object({
  EDGE_DATABASE_URL: secret(Type.String({ pattern: '^postgres(ql)?://' })),
  EDGE_READER_ROLE: ReaderRoleSetting,
  LOG_LEVEL: LogLevelSetting,
  LOG_FORMAT: LogFormatSetting,
});

/** The result as a person reads it on a terminal (`--json` gives the JSON there too). */
function describeResult(result: SyncResult): string {
  const head = `sync ${result.status} in ${result.durationMs} ms: manifest ${result.manifestId ?? '-'}, ${result.rowsLoaded} rows loaded, ack ${result.ack}`;
  const loaded = new Set(result.tablesLoaded ?? []);
  return [
    head,
    ...result.tables.map(
      (t) =>
        `  ${t.name.padEnd(16)} ${String(t.rowCount).padStart(9)} rows  ${loaded.has(t.name) ? 'loaded' : 'kept  '}  ${t.sha256}`,
    ),
  ].join('\n');
}

export const edgeCommands: Record<string, Command> = {
  async migrate(argv) {
    parseFlags(argv, {});
    const settings = loadConfig(DbSettings);
    return withPool(settings.EDGE_DATABASE_URL, async (pool) => {
      const log = createLogger('dbupdate-cli', settings.LOG_LEVEL);
      const result = await prepareEdgeDatabase(pool, settings.EDGE_READER_ROLE, log);
      console.log(`edge migrations: ${result.applied.length} applied, now at ${result.current}`);
      return 0;
    });
  },

  async serve(argv) {
    parseFlags(argv, {});
    // Imported here: the other edge commands load no HTTP server.
    const { runEdge } = await import('../edge/server.ts');
    await runEdge(loadEdgeConfig());
    return -1;
  },

  async sync(argv) {
    const flags = parseFlags(argv, { full: { type: 'boolean' }, json: { type: 'boolean' } });
    const config = loadEdgeConfig();
    // stdout carries the result alone, so `edge sync > result.json` is the result; logs go to stderr.
    // On a terminal the result says what happened; step lines there only when LOG_LEVEL asks for them.
    const quiet = process.stderr.isTTY && !process.env.LOG_LEVEL;
    const log = createLogger('dbupdate-service', quiet ? 'error' : config.LOG_LEVEL, config, 2);
    return withPool(config.EDGE_DATABASE_URL, async (pool) => {
      await prepareEdgeDatabase(pool, config.EDGE_READER_ROLE, log);
      const progress = terminalProgress(process.stderr);
      const result = await createSyncer(config, pool, log).run('cli', {
        full: flags.full === true,
        ...(progress ? { progress } : {}),
      });
      const human = process.stdout.isTTY && flags.json !== true;
      console.log(human ? describeResult(result) : JSON.stringify(result, null, 2));
      if (result.status === 'failed') throw new AppError(result.error!.code, result.error!.message);
      return 0;
    });
  },

  async verify(argv) {
    const flags = parseFlags(argv, { json: { type: 'boolean' } });
    const settings = loadConfig(DbSettings);
    return withPool(settings.EDGE_DATABASE_URL, async (pool) => {
      const result = await verifyLocal(pool);
      // Central hears of it with the next sync's device report.
      await setState(pool, {
        driftTables: result.drifted.join(','),
        driftCheckedAt: new Date().toISOString(),
      });
      if (flags.json) console.log(JSON.stringify(result));
      else
        for (const t of result.tables)
          console.log(
            `${t.ok ? 'ok   ' : 'DRIFT'} ${t.name.padEnd(16)} ${String(t.actual.rowCount).padStart(9)} rows  ${t.actual.sha256}`,
          );
      if (result.drifted.length > 0) {
        throw new AppError(
          'LOCAL_DRIFT',
          `tables differ from manifest ${result.manifestId}: ${result.drifted.join(', ')}`,
        );
      }
      if (!flags.json) console.log(`all tables match manifest ${result.manifestId}`);
      return 0;
    });
  },
};
