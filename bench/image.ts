/**
 * The Node and allocator settings our container image runs with, so benchmarks measure
 * what ships; a NODE_OPTIONS of the caller's (say --inspect) comes after them, so it wins.
 */
import { readDockerfile } from '../test/helpers/compose.ts';

export function imageNodeEnv(): Record<string, string> {
  const env = readDockerfile('Dockerfile').central!.env;
  const options = [env.NODE_OPTIONS, process.env.NODE_OPTIONS].filter(Boolean).join(' ');
  return {
    ...(options ? { NODE_OPTIONS: options } : {}),
    ...(env.MALLOC_ARENA_MAX ? { MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX } : {}),
  };
}
