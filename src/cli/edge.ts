import { Type } from 'typebox';
import { loadEdgeConfig } from '../edge/config.ts';
import { edgeMigrations } from '../edge/migrations.ts';
import { createSyncer, runEdge } from '../edge/server.ts';
import { verifyLocal } from '../edge/services/verify.ts';
import { loadConfig, LogLevelSetting } from '../platform/config.ts';
import { AppError } from '../platform/errors.ts';
import { createLogger } from '../platform/logger.ts';
import { migrate } from '../platform/migrate.ts';
import { parseFlags, withPool, type Command } from './util.ts';

const DbSettings = Type.Object({
  EDGE_DATABASE_URL: Type.String({ pattern: '^postgres(ql)?://' }),
  LOG_LEVEL: LogLevelSetting,
});

export const edgeCommands: Record<string, Command> = {
  async migrate(argv) {
    parseFlags(argv, {});
    const settings = loadConfig(DbSettings);
    return withPool(settings.EDGE_DATABASE_URL, async (pool) => {
      const result = await migrate(
        pool,
        await edgeMigrations(),
        createLogger('dbupdate-cli', settings.LOG_LEVEL),
      );
      console.log(`edge migrations: ${result.applied.length} applied, now at ${result.current}`);
      return 0;
    });
  },

  async serve(argv) {
    parseFlags(argv, {});
    await runEdge(loadEdgeConfig());
    return -1;
  },

  async sync(argv) {
    const flags = parseFlags(argv, { full: { type: 'boolean' } });
    const config = loadEdgeConfig();
    const log = createLogger('dbupdate-service', config.LOG_LEVEL, config);
    return withPool(config.EDGE_DATABASE_URL, async (pool) => {
      await migrate(pool, await edgeMigrations(), log);
      const result = await createSyncer(config, pool, log).run('cli', { full: flags.full === true });
      console.log(JSON.stringify(result, null, 2));
      if (result.status === 'failed') throw new AppError(result.error!.code as never, result.error!.message);
      return 0;
    });
  },

  async verify(argv) {
    parseFlags(argv, {});
    const settings = loadConfig(DbSettings);
    return withPool(settings.EDGE_DATABASE_URL, async (pool) => {
      const result = await verifyLocal(pool);
      for (const t of result.tables) {
        console.log(
          `${t.ok ? 'ok   ' : 'DRIFT'} ${t.name.padEnd(16)} ${String(t.actual.rowCount).padStart(9)} rows  ${t.actual.sha256}`,
        );
      }
      if (result.drifted.length > 0) {
        throw new AppError(
          'LOCAL_DRIFT',
          `tables differ from manifest ${result.manifestId}: ${result.drifted.join(', ')}`,
        );
      }
      console.log(`all tables match manifest ${result.manifestId}`);
      return 0;
    });
  },
};
