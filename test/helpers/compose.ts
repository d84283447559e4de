/**
 * Reading our Compose files and Dockerfile the way Docker would, so tests can run
 * each service natively with exactly the command and environment it gets in a container.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

export interface ComposeService {
  image?: string;
  build?: { context: string; target: string };
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
}

/** `KEY=value` lines; comments and blanks skipped. */
export function readEnvFile(path: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (match) env[match[1]!] = match[2]!;
  }
  return env;
}

/** Compose variable interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}. */
export function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(
    /\$\{([A-Z_][A-Z0-9_]*)(?:(:-|:\?)([^}]*))?\}/g,
    (_, name: string, op?: string, arg?: string) => {
      const value = env[name];
      if (value !== undefined && value !== '') return value;
      if (op === ':-') return arg ?? '';
      if (op === ':?') throw new Error(`${name}: ${arg}`);
      return '';
    },
  );
}

export function loadCompose(file: string, envFile: string): ComposeFile {
  const raw = readFileSync(file, 'utf8');
  return parse(interpolate(raw, readEnvFile(envFile))) as ComposeFile;
}

export interface DockerTarget {
  entrypoint: string[];
  cmd: string[];
  env: Record<string, string>;
  expose: number[];
  healthcheck: string[];
}

/** The final configuration of each build target (ENTRYPOINT, CMD, ENV, EXPOSE, HEALTHCHECK), following FROM chains. */
export function readDockerfile(file: string): Record<string, DockerTarget> {
  const lines = readFileSync(file, 'utf8')
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const targets: Record<string, DockerTarget> = {};
  let current: DockerTarget | undefined;
  for (const line of lines) {
    const [instruction, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (instruction === 'FROM') {
      const [base, , name] = rest;
      const parent = targets[base ?? ''];
      current = parent
        ? { ...parent, env: { ...parent.env }, expose: [...parent.expose] }
        : { entrypoint: [], cmd: [], env: {}, expose: [], healthcheck: [] };
      if (name) targets[name] = current;
    } else if (!current) {
      continue;
    } else if (instruction === 'ENTRYPOINT') {
      current.entrypoint = JSON.parse(args) as string[];
    } else if (instruction === 'CMD') {
      current.cmd = JSON.parse(args) as string[];
    } else if (instruction === 'EXPOSE') {
      current.expose.push(...rest.map(Number));
    } else if (instruction === 'ENV') {
      for (const m of args.matchAll(/([A-Z_][A-Z0-9_]*)=(?:"([^"]*)"|(\S+))/g))
        current.env[m[1]!] = m[2] ?? m[3]!;
    } else if (instruction === 'HEALTHCHECK') {
      current.healthcheck = JSON.parse(args.slice(args.indexOf('CMD ') + 4)) as string[];
    }
  }
  return targets;
}
