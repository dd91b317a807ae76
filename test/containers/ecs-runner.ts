import { execFile } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import {
  type ContainerEngine,
  type EngineTask,
  LOG_LIMIT,
  LocalEcs,
  type LocalEcsOptions,
  type TaskContainer,
} from '../cdk/local-ecs';
import type { Cfn } from '../cdk/synth';

/**
 * ECS tasks on a Docker engine: the synthesized task definition run the way the ECS agent runs it.
 * The control plane (RunTask's checks and overrides, dependsOn, essential containers, stopping,
 * DescribeTasks, the `.sync` judgement and the ECS API for the Lambdas) is LocalEcs's, shared with
 * the process-based stand-in; this engine runs each container in Docker:
 *
 *   - networking: one network namespace per task (awsvpc), held by a `pause` container; every
 *     container joins it (`--network container:…`), so they reach each other on 127.0.0.1 and two
 *     tasks may both listen on 8080;
 *   - volumes: fresh Docker named volumes per task, which take the owner and mode of the image's
 *     directory at the mount point of the first container that mounts them (as ECS on EC2; Fargate's
 *     bind mounts do the same through the image's VOLUME instruction); `mountPoints` as declared;
 *   - container settings: `readonlyRootFilesystem`, `user` (else the image's USER), health checks,
 *     `initProcessEnabled` (`--init`), container cpu/memory (shares, hard and soft limits) within the
 *     task's size, `entryPoint`/`command`, the environment with RunTask's overrides;
 *   - stopping: SIGTERM, then SIGKILL after the container's `stopTimeout` (`docker stop -t`).
 *
 * Containers are created when their dependencies are met, as the agent does, so a volume is
 * populated from the image of the container that mounts it first in that order.
 *
 * Servers of the test process (S3 on loopback) are reached from tasks through `exposeToTasks`.
 */

export interface DockerEcsOptions extends Omit<LocalEcsOptions, 'engine' | 'images'> {
  /** Image as the task definition names it → the local image to run. @default the same name */
  readonly images?: Readonly<Record<string, string>>;
  /** The image of each task's network-namespace holder (needs `sleep`). */
  readonly pauseImage: string;
  /**
   * Variables whose values are URLs of servers of this process on loopback (`http://127.0.0.1:…`):
   * every container gets them rewritten to a URL that reaches the server from its task.
   * @default {}
   */
  readonly loopbackEnvironment?: Readonly<Record<string, string>>;
}

/** The label every container and volume of the runner carries: `docker … --filter label=…` finds leftovers. */
export const RUNNER_LABEL = 'batch-transform.ecs-runner';

/** A LocalEcs whose tasks run in Docker, and its engine (for `exposeToTasks` and `close`). */
export async function startDockerEcs(
  options: DockerEcsOptions,
): Promise<{ ecs: LocalEcs; engine: DockerEngine }> {
  const { images, pauseImage, loopbackEnvironment = {}, platformEnvironment, ...rest } = options;
  const engine = new DockerEngine(images ?? {}, pauseImage);
  const reachable: Record<string, string> = {};
  for (const [name, url] of Object.entries(loopbackEnvironment))
    reachable[name] = await engine.exposeToTasks(url);
  const ecs = await LocalEcs.start({
    ...rest,
    platformEnvironment: { ...platformEnvironment, ...reachable },
    engine,
  });
  // The task metadata endpoint (ECS serves it at 169.254.170.2 inside the task), reached from the tasks.
  ecs.taskMetadataBase = await engine.exposeToTasks(ecs.endpoint);
  return { ecs, engine };
}

interface Docker {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the docker CLI; never throws for a non-zero exit (the caller decides). */
export function docker(args: readonly string[], timeoutMs = 120_000): Promise<Docker> {
  return new Promise((resolve) => {
    execFile('docker', args, { maxBuffer: 16 * 1024 * 1024, timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({
        code,
        stdout: String(stdout),
        stderr: String(stderr || (error && !stderr ? error.message : '')),
      });
    });
  });
}

async function mustDocker(args: readonly string[]): Promise<string> {
  const r = await docker(args);
  if (r.code !== 0) throw new Error(`docker ${args[0]} failed: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout.trim();
}

/** Whether a Docker engine answers (the container tests need one; test/containers/setup.sh starts it). */
export async function dockerAvailable(): Promise<boolean> {
  return (await docker(['version', '--format', '{{.Server.Version}}'], 10_000)).code === 0;
}

/**
 * The host's address on Docker's default bridge (docker0), where containers reach this machine. Node
 * lists no address of an interface that is down, which docker0 is while no container runs.
 */
async function bridgeAddress(): Promise<string> {
  const listed = networkInterfaces().docker0?.find((a) => a.family === 'IPv4')?.address;
  if (listed) return listed;
  const ip = await new Promise<string>((resolve) =>
    execFile('ip', ['-4', '-o', 'addr', 'show', 'dev', 'docker0'], (_e, stdout) => resolve(String(stdout))),
  );
  const found = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(ip)?.[1];
  if (!found) throw new Error('no docker0 address: is the Docker engine running with its default bridge?');
  return found;
}

/** Seconds as Docker's duration flags take them. */
const seconds = (s: number | undefined, fallback: number) => `${s ?? fallback}s`;

/** A shell word: ECS's `CMD` health checks are exec arrays, Docker's flag takes one shell string. */
const shellWord = (w: string) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`);

export class DockerEngine implements ContainerEngine {
  readonly #images: Readonly<Record<string, string>>;
  readonly #pauseImage: string;
  /** Task id → its holder's container id. */
  readonly #holders = new Map<string, string>();
  readonly #containers = new Map<TaskContainer, string>();
  readonly #forwarders: net.Server[] = [];

  constructor(images: Readonly<Record<string, string>>, pauseImage: string) {
    this.#images = images;
    this.#pauseImage = pauseImage;
  }

  #prefix(task: EngineTask): string {
    return `bt-${task.id.slice(0, 12)}`;
  }

  #volume(task: EngineTask, name: string): string {
    return `${this.#prefix(task)}-${name}`;
  }

  async provision(task: EngineTask): Promise<void> {
    const label = ['--label', `${RUNNER_LABEL}=${task.id}`];
    for (const v of task.volumes) {
      if (v.Host?.SourcePath || v.DockerVolumeConfiguration || v.EfsVolumeConfiguration)
        throw new Error(`volume ${v.Name}: only task-scoped volumes without configuration are run here`);
      await mustDocker(['volume', 'create', ...label, this.#volume(task, v.Name)]);
    }
    const holder = await mustDocker([
      'run',
      '--detach',
      ...label,
      '--name',
      `${this.#prefix(task)}-pause`,
      '--network',
      'bridge',
      '--init',
      '--entrypoint',
      'sleep',
      this.#pauseImage,
      'infinity',
    ]);
    this.#holders.set(task.id, holder);
  }

  /** `docker create` arguments for one container of the synthesized definition. */
  #createArgs(task: EngineTask, c: TaskContainer): string[] {
    const d: Cfn = c.definition;
    const args = [
      'create',
      '--label',
      `${RUNNER_LABEL}=${task.id}`,
      '--name',
      `${this.#prefix(task)}-${c.name}`,
      '--network',
      `container:${this.#holders.get(task.id)}`,
      '--stop-timeout',
      String(c.stopTimeoutS),
    ];
    if (d.ReadonlyRootFilesystem) args.push('--read-only');
    if (d.User) args.push('--user', String(d.User));
    if (d.LinuxParameters?.InitProcessEnabled) args.push('--init');
    for (const m of d.MountPoints ?? []) {
      const readOnly = m.ReadOnly ? ',readonly' : '';
      args.push(
        '--mount',
        `type=volume,src=${this.#volume(task, m.SourceVolume)},dst=${m.ContainerPath}${readOnly}`,
      );
    }
    // The task's size bounds every container (ECS puts them in one cgroup); container sizes within it.
    if (task.cpu) args.push('--cpus', String(Number(task.cpu) / 1024));
    if (d.Cpu) args.push('--cpu-shares', String(Math.max(2, Number(d.Cpu))));
    const memory = d.Memory ?? task.memory;
    if (memory) args.push('--memory', `${memory}m`);
    if (d.MemoryReservation) args.push('--memory-reservation', `${d.MemoryReservation}m`);
    const health = d.HealthCheck;
    if (health) {
      const [kind, ...rest] = health.Command as string[];
      const cmd = kind === 'CMD-SHELL' ? rest.join(' ') : rest.map(shellWord).join(' ');
      args.push(
        '--health-cmd',
        cmd,
        '--health-interval',
        seconds(health.Interval, 30),
        '--health-timeout',
        seconds(health.Timeout, 5),
        '--health-retries',
        String(health.Retries ?? 3),
        '--health-start-period',
        seconds(health.StartPeriod, 0),
      );
    }
    for (const [k, v] of Object.entries(c.env)) args.push('--env', `${k}=${v}`);
    const entryPoint = d.EntryPoint as string[] | undefined;
    if (entryPoint?.length) args.push('--entrypoint', entryPoint[0]!);
    args.push(this.#images[c.image] ?? c.image);
    args.push(...(entryPoint?.slice(1) ?? []), ...(c.command ?? []));
    return args;
  }

  async run(task: EngineTask, c: TaskContainer): Promise<number | undefined> {
    const id = await mustDocker(this.#createArgs(task, c));
    this.#containers.set(c, id);
    await mustDocker(['start', id]);
    c.started.resolve();
    const waited = await docker(['wait', id], 24 * 3600_000);
    const code = Number(waited.stdout.trim());
    if (waited.code !== 0 || !Number.isInteger(code)) {
      c.reason = `docker wait failed: ${waited.stderr.trim()}`;
      return undefined;
    }
    const oom = await docker(['inspect', '--format', '{{.State.OOMKilled}}', id]);
    if (oom.stdout.trim() === 'true') c.reason = 'OutOfMemoryError: Container killed due to memory usage';
    return code;
  }

  async healthy(_task: EngineTask, c: TaskContainer): Promise<boolean> {
    const id = this.#containers.get(c);
    if (!id || !c.definition.HealthCheck) return false;
    let exited = false;
    void c.exited.promise.then(() => {
      exited = true;
    });
    while (!exited) {
      const r = await docker(['inspect', '--format', '{{.State.Status}} {{.State.Health.Status}}', id]);
      const [state, health] = r.stdout.trim().split(' ');
      if (health === 'healthy') return true;
      if (health === 'unhealthy' || r.code !== 0 || (state !== 'running' && state !== 'created'))
        return false;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return false;
  }

  async stop(_task: EngineTask, c: TaskContainer): Promise<void> {
    const id = this.#containers.get(c);
    // SIGTERM, then SIGKILL after the stop timeout, as the ECS agent does.
    if (id) await docker(['stop', '--time', String(c.stopTimeoutS), id], (c.stopTimeoutS + 30) * 1000);
    await c.exited.promise;
  }

  async release(task: EngineTask): Promise<void> {
    await Promise.all(
      task.containers.map(async (c) => {
        const id = this.#containers.get(c);
        if (!id) return;
        const logs = await docker(['logs', id]);
        c.output = (c.output + logs.stdout + logs.stderr).slice(-LOG_LIMIT);
        await docker(['rm', '--force', '--volumes', id]);
        this.#containers.delete(c);
      }),
    );
    const holder = this.#holders.get(task.id);
    if (holder) await docker(['rm', '--force', holder]);
    this.#holders.delete(task.id);
    for (const v of task.volumes) await docker(['volume', 'rm', '--force', this.#volume(task, v.Name)]);
  }

  /**
   * A URL under which tasks reach a server of this process that listens on loopback
   * (`http://127.0.0.1:<port>`): a TCP forwarder on the Docker bridge's address.
   */
  async exposeToTasks(url: string): Promise<string> {
    const target = new URL(url);
    const bridge = await bridgeAddress();
    const server = net.createServer((socket) => {
      const upstream = net.connect(Number(target.port), target.hostname);
      socket.pipe(upstream).pipe(socket);
      const close = () => {
        socket.destroy();
        upstream.destroy();
      };
      socket.on('error', close);
      upstream.on('error', close);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, bridge, () => resolve());
    });
    this.#forwarders.push(server);
    return `${target.protocol}//${bridge}:${(server.address() as AddressInfo).port}`;
  }

  /** Closes the forwarders and removes whatever a crashed test left behind. */
  async close(): Promise<void> {
    for (const s of this.#forwarders) s.close();
    const left = await docker(['ps', '--all', '--quiet', '--filter', `label=${RUNNER_LABEL}`]);
    const ids = left.stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await docker(['rm', '--force', '--volumes', ...ids]);
    const volumes = await docker(['volume', 'ls', '--quiet', '--filter', `label=${RUNNER_LABEL}`]);
    const names = volumes.stdout.split('\n').filter(Boolean);
    if (names.length > 0) await docker(['volume', 'rm', '--force', ...names]);
  }
}
