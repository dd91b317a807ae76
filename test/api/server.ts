import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { CLI, ROOT } from '../support/cli';

/**
 * The API server as a user starts it (`batch-transform api --local …`, a child process), and the real
 * clients that talk to it: python3's boto3 and the AWS CLI.
 */

export interface RunningApi {
  readonly url: string;
  readonly child: ChildProcess;
  /** What the server wrote to stderr so far (its job log). */
  log(): string;
  /** SIGTERM, then the exit code and signal. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startApi(
  args: readonly string[],
  opts: { cwd?: string; local?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<RunningApi> {
  const backEnd = opts.local === false ? [] : ['--local'];
  const child = spawn(process.execPath, [CLI, 'api', ...backEnd, '--port', '0', ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the API server did not start in 30 s:\n${stderr}`)),
      30_000,
    );
    child.stdout!.on('data', (d) => {
      stdout += d;
      const m = /listening on (http:\/\/\S+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`the API server exited (${code}) before it listened:\n${stderr}`));
    });
  });
  return {
    url,
    child,
    log: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Why the boto3 tests cannot run here, or undefined when python3 with boto3 is available. */
export function boto3Missing(): string | undefined {
  const r = spawnSync('python3', ['-c', 'import boto3'], { encoding: 'utf8' });
  if (r.error) return `python3 is not installed (${r.error.message})`;
  if (r.status !== 0)
    return `python3 cannot import boto3 (pip install boto3, or apt-get install python3-boto3)`;
  return undefined;
}

/** Why the AWS CLI test cannot run here, or undefined when `aws` is on the PATH. */
export function awsCliMissing(): string | undefined {
  const r = spawnSync('aws', ['--version'], { encoding: 'utf8' });
  if (r.error) return `the AWS CLI is not installed (apt-get install awscli)`;
  return undefined;
}

/** Environment for clients: the server as SageMaker's endpoint, dummy credentials, a region. */
export function clientEnv(url: string): NodeJS.ProcessEnv {
  const { AWS_PROFILE: _profile, AWS_DEFAULT_PROFILE: _defaultProfile, ...inherited } = process.env;
  return {
    ...inherited,
    AWS_ENDPOINT_URL_SAGEMAKER: url,
    AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'not-checked',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_REGION: 'us-east-1',
    // No profile or config file of this machine may change what the test sees.
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

/** Runs a command to its end; rejects with its output when it fails or takes too long. */
export function run(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 120_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
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
      reject(new Error(`${command} ${args.join(' ')} took longer than ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}\n${stdout}\n${stderr}`));
    });
  });
}
