/** The Node settings our container image runs with, so benchmarks measure what ships. */
import { readDockerfile } from '../test/helpers/compose.ts';

export function imageNodeEnv(): Record<string, string> {
  const env = readDockerfile('Dockerfile').central!.env;
  return env.NODE_OPTIONS ? { NODE_OPTIONS: env.NODE_OPTIONS } : {};
}
