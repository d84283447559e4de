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
  profiles?: string[];
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

export interface DockerStage {
  /** The stage or image it starts from. */
  from: string;
  steps: { instruction: string; args: string }[];
}

/** The stages of a Dockerfile by name (an unnamed one by its base), each with its instructions in order. */
export function dockerfileStages(text: string): Map<string, DockerStage> {
  const stages = new Map<string, DockerStage>();
  let current: DockerStage | undefined;
  const lines = text.replace(/\\\n\s*/g, ' ').split('\n');
  for (const line of lines.map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))) {
    const [instruction, ...rest] = line.split(/\s+/);
    if (instruction === 'FROM') {
      current = { from: rest[0]!, steps: [] };
      stages.set(rest[2] ?? rest[0]!, current);
    } else {
      current?.steps.push({ instruction: instruction!, args: rest.join(' ') });
    }
  }
  return stages;
}

/** The `KEY=value` and `KEY="value"` pairs of an ENV instruction. */
export function envAssignments(args: string): [string, string][] {
  return [...args.matchAll(/([A-Z_][A-Z0-9_]*)=(?:"([^"]*)"|(\S+))/g)].map((m) => [m[1]!, m[2] ?? m[3]!]);
}

/** The final configuration of each build target (ENTRYPOINT, CMD, ENV, EXPOSE, HEALTHCHECK), following FROM chains. */
export function readDockerfile(file: string): Record<string, DockerTarget> {
  const targets: Record<string, DockerTarget> = {};
  for (const [name, stage] of dockerfileStages(readFileSync(file, 'utf8'))) {
    const parent = targets[stage.from];
    const current: DockerTarget = parent
      ? { ...parent, env: { ...parent.env }, expose: [...parent.expose] }
      : { entrypoint: [], cmd: [], env: {}, expose: [], healthcheck: [] };
    for (const { instruction, args } of stage.steps) {
      if (instruction === 'ENTRYPOINT') current.entrypoint = JSON.parse(args) as string[];
      else if (instruction === 'CMD') current.cmd = JSON.parse(args) as string[];
      else if (instruction === 'EXPOSE') current.expose.push(...args.split(/\s+/).map(Number));
      else if (instruction === 'ENV') Object.assign(current.env, Object.fromEntries(envAssignments(args)));
      else if (instruction === 'HEALTHCHECK')
        current.healthcheck = JSON.parse(args.slice(args.indexOf('CMD ') + 4)) as string[];
    }
    targets[name] = current;
  }
  return targets;
}
