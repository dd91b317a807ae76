import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../bin/batch-transform.mjs', import.meta.url));
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The project's test model served as a process: `run --local --model-command` takes it as written. */
export const TEST_MODEL = 'node --import tsx test/fixtures/models/test-model.ts';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `batch-transform` entry point as a child process, as a user would. */
export function runCli(
  args: readonly string[],
  opts: {
    stdin?: string;
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    timeoutMs?: number;
    /** The entry point to run. @default this checkout's bin/batch-transform.mjs */
    cli?: string;
  } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [opts.cli ?? CLI, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `batch-transform ${args.join(' ')} did not finish in ${opts.timeoutMs ?? 60_000} ms\n${stderr}`,
        ),
      );
    }, opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

/** The JSON line that ends every `--json` outcome (the CLI prints it last). */
// biome-ignore lint/suspicious/noExplicitAny: tests read fields of a JSON document they assert on
export function lastJson(r: CliResult | string): Record<string, any> {
  const stdout = typeof r === 'string' ? r : r.stdout;
  return JSON.parse(stdout.trim().split('\n').pop()!);
}
