/** The `dbupdate` command line run as a user's shell runs it: a child process, real settings. */
import { spawn } from 'node:child_process';

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `dbupdate` with only the given settings (plus PATH), as a user's shell would. */
export function dbupdate(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return runProcess(process.execPath, ['bin/dbupdate.ts', ...args], { PATH: process.env.PATH ?? '', ...env });
}

export function runProcess(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Run> {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}
