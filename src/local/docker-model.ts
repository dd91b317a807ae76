/**
 * A SageMaker inference image as a local worker's model, run in Docker the way SageMaker runs it
 * (REFERENCE.md "Model contract"; the SageMaker Python SDK's local mode does the same:
 * `docker run <image> serve`, port 8080, artifacts at /opt/ml/model): `serve` as the argument,
 * the SAGEMAKER_* batch environment, and ModelDataUrl's extracted artifacts bind-mounted at
 * /opt/ml/model. The sidecar is a process on this machine, so the container's 8080 is published on
 * a free loopback port, one container per worker.
 *
 * Everything goes through the docker CLI (no client library), so DOCKER_HOST, DOCKER_CONTEXT and
 * the user's docker configuration apply as they do to `docker` itself.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { freePort, type ManagedProcess, startProcess } from './processes';

/** SageMaker's model server port inside the container. */
export const MODEL_CONTAINER_PORT = 8080;
/** Where SageMaker puts the model artifacts in the container. */
export const MODEL_CONTAINER_DIR = '/opt/ml/model';
/** The label that ties a container to the local run that started it (localRunKey). */
export const LOCAL_RUN_LABEL = 'batch-transform.local-run';

/** No Docker engine can run the image: the docker CLI is missing or its engine does not answer. */
export class DockerUnavailableError extends Error {
  override readonly name = 'DockerUnavailableError';
}

/** The model's image is not on this machine and could not be pulled. */
export class ModelImageError extends Error {
  override readonly name = 'ModelImageError';
}

interface DockerResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Set when the docker CLI could not be started at all (ENOENT: not installed or not on PATH). */
  readonly spawnError?: NodeJS.ErrnoException;
}

/** Runs the docker CLI to its end. */
function docker(args: readonly string[], timeoutMs = 60_000): Promise<DockerResult> {
  return new Promise((resolve) => {
    const child = spawn('docker', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr, spawnError: e });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const lastLine = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .at(-1) ?? '';

/**
 * Checks that a Docker engine answers, naming what is missing when none does: the docker CLI, or
 * the engine behind it (not running, no permission on its socket, DOCKER_HOST pointing nowhere).
 */
export async function checkDocker(): Promise<void> {
  // `docker version` asks the engine too; 20 s covers a slow remote engine, not a dead one.
  const r = await docker(['version', '--format', '{{.Server.Version}}'], 20_000);
  if (r.spawnError?.code === 'ENOENT')
    throw new DockerUnavailableError(
      'a model image needs Docker, and no docker CLI was found on PATH: install Docker (the engine and its CLI), or serve the model with --model-command',
    );
  if (r.spawnError)
    throw new DockerUnavailableError(`the docker CLI could not be started: ${r.spawnError.message}`);
  if (r.code !== 0 || !r.stdout.trim()) {
    const said = r.code === null ? 'no answer within 20 s' : lastLine(r.stderr) || `exit code ${r.code}`;
    throw new DockerUnavailableError(
      `a model image needs Docker, and the Docker engine does not answer (docker version: ${said}): start it, or check DOCKER_HOST and your permission on its socket`,
    );
  }
}

/** Whether the image is on this machine's engine. */
export async function imagePresent(image: string): Promise<boolean> {
  return (await docker(['image', 'inspect', '--format', '{{.Id}}', image])).code === 0;
}

/**
 * Makes sure the engine answers and holds the image, pulling it when it is missing (as SageMaker's
 * local mode does). The pull happens here, before any worker starts, so it never eats into the
 * model's start-up budget.
 */
export async function prepareModelImage(
  image: string,
  opts: { pull?: boolean; onPull?: () => void } = {},
): Promise<void> {
  await checkDocker();
  if (await imagePresent(image)) return;
  if (opts.pull === false)
    throw new ModelImageError(`the image ${image} is not on this machine (docker pull ${image})`);
  opts.onPull?.();
  // Large inference images take minutes to pull; an hour bounds a stalled one.
  const pulled = await docker(['pull', '--quiet', image], 3_600_000);
  if (pulled.code !== 0)
    throw new ModelImageError(
      `the image ${image} is not on this machine and could not be pulled: ${lastLine(pulled.stderr) || `exit code ${pulled.code}`}`,
    );
}

/**
 * The key that labels a run's containers: derived from the run's own folder (unique per job name and
 * work root, and held by its job-name lock), so the next run of the same name finds the containers
 * a dead run left, and runs elsewhere never touch them.
 */
export function localRunKey(runDir: string): string {
  return createHash('sha256').update(runDir).digest('hex').slice(0, 16);
}

/** Removes every container of the run (a dead run's leftovers, or this run's after a failure). */
export async function removeRunContainers(runDir: string): Promise<void> {
  const listed = await docker([
    'ps',
    '--all',
    '--quiet',
    '--filter',
    `label=${LOCAL_RUN_LABEL}=${localRunKey(runDir)}`,
  ]);
  const ids = listed.stdout.split('\n').filter(Boolean);
  if (ids.length > 0) await docker(['rm', '--force', ...ids]);
}

export interface ModelContainerOptions {
  readonly image: string;
  /** The worker's name (`worker-000`), in the container's name. */
  readonly worker: string;
  readonly jobName: string;
  /** The run's local folder (localRunPaths' runDir): the label key. */
  readonly runDir: string;
  /** Extracted ModelDataUrl artifacts, mounted read-only at /opt/ml/model; absent: the image's own. */
  readonly modelDir?: string;
  /** The model's environment: the SAGEMAKER_* batch variables, the model's and the job's. */
  readonly environment: Readonly<Record<string, string>>;
  readonly logFile: string;
}

export interface ModelContainer {
  /** The `docker run` client: it lives as long as the container, and its output is the model's. */
  readonly process: ManagedProcess;
  readonly url: string;
  readonly name: string;
  readonly image: string;
  /** Stops the container as ECS stops a task's (SIGTERM, SIGKILL after `graceMs`), then removes it. */
  stop(graceMs?: number): Promise<void>;
}

/** Containers started by this process and not yet removed: removed if it exits without doing so. */
const live = new Set<string>();
let exitHookInstalled = false;

/** The `docker run` arguments for one worker's model container (image last, then `serve`). */
export function dockerRunArgs(o: ModelContainerOptions & { name: string; hostPort: number }): string[] {
  const env = Object.entries(o.environment).flatMap(([k, v]) => ['--env', `${k}=${v}`]);
  // --mount's value is CSV: a quoted field keeps a path with a comma whole.
  const mount = o.modelDir
    ? [
        '--mount',
        `type=bind,"source=${o.modelDir.replaceAll('"', '""')}",target=${MODEL_CONTAINER_DIR},readonly`,
      ]
    : [];
  return [
    'run',
    '--rm',
    '--name',
    o.name,
    '--label',
    `${LOCAL_RUN_LABEL}=${localRunKey(o.runDir)}`,
    '--label',
    `batch-transform.job=${o.jobName}`,
    // As the deployment's task definition: an init process forwards SIGTERM to a server that runs
    // as PID 1 (which would otherwise ignore it) and reaps its children.
    '--init',
    '--publish',
    `127.0.0.1:${o.hostPort}:${MODEL_CONTAINER_PORT}`,
    ...mount,
    ...env,
    o.image,
    'serve',
  ];
}

/** Starts one worker's model container; the sidecar reaches it at `url`. */
export async function startModelContainer(o: ModelContainerOptions): Promise<ModelContainer> {
  const hostPort = await freePort();
  const name = `bt-${o.jobName}-${localRunKey(o.runDir).slice(0, 8)}-${o.worker}`;
  installExitHook();
  live.add(name);
  const client = startProcess(
    `${o.worker} model container ${o.image}`,
    'docker',
    dockerRunArgs({ ...o, name, hostPort }),
    { env: process.env, logFile: o.logFile },
  );
  const remove = async () => {
    // --rm removes it once it stops; this covers a client that died before its container did.
    await docker(['rm', '--force', name]);
    live.delete(name);
  };
  void client.exited.then(() => remove());
  return {
    process: client,
    url: `http://127.0.0.1:${hostPort}`,
    name,
    image: o.image,
    async stop(graceMs = 5000) {
      if (client.exitReason() === undefined)
        await docker(['stop', '--time', String(Math.ceil(graceMs / 1000)), name], graceMs + 30_000);
      await remove();
      // Normally already gone with its container; if the engine stopped answering, end it here.
      await client.stop(1000);
    },
  };
}

/**
 * A run that ends without stopping its workers (an uncaught error) must not leave containers
 * running: on exit, remove them synchronously (an exit handler cannot wait for anything else).
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    if (live.size > 0) spawnSync('docker', ['rm', '--force', ...live], { stdio: 'ignore', timeout: 20_000 });
  });
}
