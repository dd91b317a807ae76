import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { constants } from 'node:os';
import { REPO_ROOT } from '../../lib/paths';
import { freePort } from '../../src/local/processes';
import { type Asl, type CfnTemplate, PLACEHOLDER_ENV, resolve } from './definition';
import type { Cfn } from './synth';

/**
 * A local stand-in for ECS, for running the synthesized state machine on this machine:
 *
 *   - `runTaskSync` serves the `ecs:runTask.sync` Task state. It checks the RunTask parameters the
 *     way ECS would (cluster, task definition, capacity provider, container names, the 8 KiB cap of
 *     overrides), starts every container of the task definition as a local process (the task
 *     definition's environment with the overrides over it, the image's entry point and command
 *     mapped to a local argv), waits until the essential container exits, stops the rest, and
 *     answers as Step Functions' `.sync` integration does: the DescribeTasks task (PascalCase) when
 *     every container that ran exited 0, else a `States.TaskFailed` whose cause is that task as JSON.
 *   - `endpoint` is an ECS API endpoint (JSON 1.1 protocol: ListTasks, DescribeTasks, StopTask) for
 *     the Lambdas' own ECS client, reached through `AWS_ENDPOINT_URL_ECS`.
 *
 * How containers run is the `engine`'s business; ECS's control plane (RunTask's checks, dependsOn,
 * essential containers, stopping, DescribeTasks, the API) is this class's. The default engine runs
 * each container as a local process: the containers of a task share this machine's loopback with
 * other tasks, so a container port (the model's 8080) is a free port here, and
 * `127.0.0.1:<container port>` in the other containers' environment is rewritten to it.
 * test/containers/ecs-runner.ts runs them in Docker instead, as ECS does. Credentials and the S3
 * endpoint come from `platformEnvironment` (in ECS: the task role and the real S3).
 */

/** What the end-to-end tests use of an ECS stand-in, whichever engine runs the containers. */
export interface EcsEmulation {
  /** `http://127.0.0.1:<port>`: the ECS API endpoint (`AWS_ENDPOINT_URL_ECS`). */
  readonly endpoint: string;
  /** The tasks started so far, oldest first. */
  readonly tasks: TaskRecord[];
  /** Every ECS API call the endpoint answered, in order. */
  readonly apiCalls: EcsApiCall[];
  /** The handler of the `ecs:runTask.sync` state: its input is the state's evaluated Parameters. */
  readonly runTaskSync: (params: Cfn) => Promise<unknown>;
  /** Stops every task still running and closes the endpoint. */
  stop(): Promise<void>;
}

/** One container of a task, as an engine sees it. */
export interface TaskContainer {
  readonly name: string;
  readonly image: string;
  readonly essential: boolean;
  readonly stopTimeoutS: number;
  /** The synthesized container definition, tokens resolved (PascalCase, as in the template). */
  readonly definition: Cfn;
  /** The override's command, else the definition's; undefined: the image's own. */
  readonly command?: readonly string[];
  /** The definition's environment with the overrides and the platform's variables applied. */
  env: Record<string, string>;
  readonly dependsOn: ReadonlyArray<{ readonly container: string; readonly condition: string }>;
  readonly started: Deferred<void>;
  readonly exited: Deferred<number | undefined>;
  /** Set once the engine was asked to run it (its dependencies were met). */
  running: boolean;
  exitCode?: number;
  reason?: string;
  /** Its output (stdout and stderr, the last 64 KiB). */
  output: string;
}

/** A task as an engine sees it. */
export interface EngineTask {
  /** The task id (the last part of its ARN). */
  readonly id: string;
  readonly containers: readonly TaskContainer[];
  /** Task-level size (RunTask's override, else the task definition's). */
  readonly cpu?: string;
  readonly memory?: string;
  /** The task definition's volumes (synthesized). */
  readonly volumes: readonly Cfn[];
}

/** Runs the containers of tasks: as processes here (the default), or in Docker. */
export interface ContainerEngine {
  /** Before any container starts: free ports (processes), a network namespace and volumes (Docker). */
  provision(task: EngineTask): Promise<void>;
  /**
   * Runs a container whose dependencies are met: resolves `c.started` once it runs, and returns its
   * exit code once it has exited (undefined if it never ran). Throws if it cannot be started.
   */
  run(task: EngineTask, c: TaskContainer): Promise<number | undefined>;
  /** True once the container's health check has passed; false if it cannot any more. */
  healthy(task: EngineTask, c: TaskContainer): Promise<boolean>;
  /** SIGTERM, then SIGKILL after the container's stop timeout; resolves once it has exited. */
  stop(task: EngineTask, c: TaskContainer): Promise<void>;
  /** After every container has stopped: keeps their output, frees what `provision` made. */
  release(task: EngineTask): Promise<void>;
}

/** How an image runs here. */
export interface LocalImage {
  /** The image's ENTRYPOINT as a local argv (run from the repository root). */
  readonly entryPoint: readonly string[];
  /** The image's CMD, used when the container definition has no Command. @default [] */
  readonly command?: readonly string[];
  /** The variable that tells the server which port to listen on, for images with port mappings. */
  readonly portVariable?: string;
}

/** One RunTask as a test sees it, to decide whether to make it misbehave. */
export interface TaskStart {
  readonly startedBy: string;
  /** 1 for the first RunTask with these parameters, 2 for its first retry, … */
  readonly attempt: number;
  /** Each container's environment, overrides applied. */
  readonly environment: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

export interface LocalEcsOptions {
  readonly template: CfnTemplate;
  /** Image (as the task definition names it) → how it runs here, for the default (process) engine. */
  readonly images?: Readonly<Record<string, LocalImage>>;
  /** How containers run. @default - each container is a local process (`images` says which) */
  readonly engine?: ContainerEngine;
  /** Added to every container's environment: credentials and endpoints a task gets from its platform. */
  readonly platformEnvironment: Readonly<Record<string, string>>;
  /** Extra environment per container name for one task: how a test makes a task fail. */
  readonly misbehave?: (
    task: TaskStart,
  ) => Readonly<Record<string, Readonly<Record<string, string>>>> | undefined;
}

/** What the tests read back about a task after it stopped. */
export interface TaskRecord {
  readonly taskArn: string;
  readonly startedBy: string;
  readonly taskDefinitionArn: string;
  readonly capacityProvider: string;
  readonly attempt: number;
  readonly environment: Readonly<Record<string, Readonly<Record<string, string>>>>;
  readonly stopCode?: string;
  readonly stoppedReason?: string;
  readonly exitCodes: Readonly<Record<string, number | undefined>>;
  /** Why a container did not run or stopped, for those ECS gives a reason. */
  readonly reasons: Readonly<Record<string, string>>;
  /** When the task started running and when it stopped (ms since the epoch). */
  readonly startedAt?: number;
  readonly stoppedAt?: number;
  /** Each container's output (stdout and stderr, the last 64 KiB), for diagnosing a failed test. */
  readonly logs: Readonly<Record<string, string>>;
}

/** An ECS API call the endpoint received. */
export interface EcsApiCall {
  readonly action: string;
  readonly input: Record<string, unknown>;
}

/** Where the endpoint serves task metadata: `<endpoint>/v4/<task id>/task`. */
const METADATA_PATH = '/v4/';
/** Output kept per container. */
export const LOG_LIMIT = 64 * 1024;
/** ECS caps a RunTask's `overrides` at 8 KiB of JSON. */
const OVERRIDES_MAX = 8192;
/** ECS's default stop timeout: SIGTERM, then SIGKILL this long after. */
const DEFAULT_STOP_TIMEOUT_S = 30;

/**
 * A registered revision of a task definition family, ACTIVE or deregistered: a synthesized definition
 * (its template resource) or one registered through the endpoint (RegisterTaskDefinition, as given).
 */
interface Revision {
  readonly family: string;
  readonly revision: number;
  /** The template resource it was registered from. */
  readonly logicalId?: string;
  /** What RegisterTaskDefinition was given (PascalCase, as in a template). */
  readonly properties?: Cfn;
  status: 'ACTIVE' | 'INACTIVE';
}

const revisionArn = (family: string, revision: number) =>
  `arn:${PLACEHOLDER_ENV.partition}:ecs:${PLACEHOLDER_ENV.region}:${PLACEHOLDER_ENV.account}:task-definition/${family}:${revision}`;

export class NamedError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

interface Task extends EngineTask {
  readonly arn: string;
  readonly cluster: string;
  readonly taskDefinitionArn: string;
  readonly startedBy: string;
  readonly capacityProvider: string;
  readonly overrides: Cfn;
  readonly attempt: number;
  readonly createdAt: number;
  readonly containers: TaskContainer[];
  desiredStatus: 'RUNNING' | 'STOPPED';
  lastStatus: 'PROVISIONING' | 'RUNNING' | 'STOPPED';
  startedAt?: number;
  stoppingAt?: number;
  stoppedAt?: number;
  stopCode?: string;
  stoppedReason?: string;
  /** Resolves when the task is asked to stop: containers still waiting for a dependency give up. */
  readonly stopping: Deferred<void>;
  readonly stopped: Deferred<void>;
}

export class LocalEcs implements EcsEmulation {
  readonly #options: LocalEcsOptions;
  readonly #engine: ContainerEngine;
  readonly #server: http.Server;
  readonly #tasks: Task[] = [];
  readonly #attempts = new Map<string, number>();
  /** Family → its revisions, oldest first: revision 1 of each synthesized task definition to begin with. */
  readonly #revisions = new Map<string, Revision[]>();
  /** Every ECS API call the endpoint answered, in order. */
  readonly apiCalls: EcsApiCall[] = [];

  private constructor(options: LocalEcsOptions) {
    this.#options = options;
    this.#engine = options.engine ?? new ProcessEngine(options.images ?? {});
    for (const [logicalId, r] of Object.entries(options.template.Resources)) {
      if (r.Type !== 'AWS::ECS::TaskDefinition') continue;
      const family = String(r.Properties?.Family ?? logicalId);
      this.#revisions.set(family, [{ family, revision: 1, logicalId, status: 'ACTIVE' }]);
    }
    this.#server = http.createServer((req, res) => {
      if (req.method === 'GET' && req.url?.startsWith(METADATA_PATH)) {
        this.#metadata(req, res);
        return;
      }
      this.#api(req, res).catch((e: Error) =>
        sendJson(res, 500, { __type: 'ServerException', message: e.message }),
      );
    });
  }

  static async start(options: LocalEcsOptions): Promise<LocalEcs> {
    const ecs = new LocalEcs(options);
    await new Promise<void>((resolve, reject) => {
      ecs.#server.once('error', reject);
      ecs.#server.listen(0, '127.0.0.1', () => resolve());
    });
    return ecs;
  }

  /** `http://127.0.0.1:<port>`: the ECS API endpoint (`AWS_ENDPOINT_URL_ECS`). */
  get endpoint(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** The tasks started so far, oldest first. */
  get tasks(): TaskRecord[] {
    return this.#tasks.map((t) => ({
      taskArn: t.arn,
      startedBy: t.startedBy,
      taskDefinitionArn: t.taskDefinitionArn,
      capacityProvider: t.capacityProvider,
      attempt: t.attempt,
      environment: Object.fromEntries(t.containers.map((c) => [c.name, c.env])),
      ...(t.stopCode ? { stopCode: t.stopCode } : {}),
      ...(t.stoppedReason ? { stoppedReason: t.stoppedReason } : {}),
      exitCodes: Object.fromEntries(t.containers.map((c) => [c.name, c.exitCode])),
      reasons: Object.fromEntries(t.containers.flatMap((c) => (c.reason ? [[c.name, c.reason]] : []))),
      logs: Object.fromEntries(t.containers.map((c) => [c.name, c.output])),
      ...(t.startedAt ? { startedAt: t.startedAt } : {}),
      ...(t.stoppedAt ? { stoppedAt: t.stoppedAt } : {}),
    }));
  }

  /** Stops every task still running and closes the endpoint. */
  async stop(): Promise<void> {
    await Promise.all(
      this.#tasks
        .filter((t) => t.lastStatus !== 'STOPPED')
        .map((t) => this.#stopTask(t, 'UserInitiated', 'test ended')),
    );
    const closed = new Promise((resolve) => this.#server.close(resolve));
    this.#server.closeAllConnections();
    await closed;
  }

  /**
   * Where containers reach this endpoint: its own address for local processes; the Docker runner
   * sets the address tasks reach it on. Containers get `ECS_CONTAINER_METADATA_URI_V4` under it.
   */
  taskMetadataBase?: string;

  /**
   * The task metadata endpoint (version 4) of ECS, `GET <ECS_CONTAINER_METADATA_URI_V4>/task`: the
   * task and each container's `KnownStatus` and, once stopped, its `ExitCode`.
   */
  #metadata(req: IncomingMessage, res: ServerResponse): void {
    const [id, what] = (req.url ?? '').slice(METADATA_PATH.length).split('/');
    const task = this.#tasks.find((t) => t.id === id);
    if (!task || what !== 'task') {
      sendJson(res, 404, { message: 'not found' });
      return;
    }
    sendJson(res, 200, {
      Cluster: task.cluster,
      TaskARN: task.arn,
      Family: task.taskDefinitionArn.replace(/^.*task-definition\/|:\d+$/g, ''),
      DesiredStatus: task.desiredStatus,
      KnownStatus: task.lastStatus,
      Containers: task.containers.map((c) => ({
        Name: c.name,
        Image: c.image,
        KnownStatus:
          c.exitCode !== undefined || task.lastStatus === 'STOPPED'
            ? 'STOPPED'
            : c.running
              ? 'RUNNING'
              : 'PENDING',
        ...(c.exitCode !== undefined ? { ExitCode: c.exitCode } : {}),
      })),
    });
  }

  /** The handler of the `ecs:runTask.sync` state: its input is the state's evaluated Parameters. */
  readonly runTaskSync = async (params: Cfn): Promise<unknown> => {
    const task = await this.#runTask(params);
    await task.stopped.promise;
    const description = pascalCase(this.#describe(task));
    // As Step Functions judges it: any container that exited non-zero fails the state.
    const failed = task.containers.some((c) => c.exitCode !== undefined && c.exitCode !== 0);
    if (task.stopCode !== 'EssentialContainerExited' || failed) {
      throw new NamedError('States.TaskFailed', JSON.stringify(description));
    }
    return description;
  };

  /**
   * A redeploy's new revision of a family: the same synthesized definition under the next revision
   * number, ACTIVE. Returns its ARN.
   */
  registerTaskDefinition(family: string): string {
    const revisions = this.#revisions.get(family);
    if (!revisions?.length) throw new Error(`no task definition family ${family} in the template`);
    const latest = revisions[revisions.length - 1]!;
    const next = { ...latest, revision: latest.revision + 1, status: 'ACTIVE' as const };
    revisions.push(next);
    return revisionArn(family, next.revision);
  }

  /** What CloudFormation does to the replaced revision on a redeploy: INACTIVE, refused by RunTask. */
  deregisterTaskDefinition(arn: string): void {
    const found = this.#revision(arn);
    if (!found) throw new Error(`no task definition ${arn}`);
    found.status = 'INACTIVE';
  }

  /**
   * The revision RunTask's `taskDefinition` names, as ECS resolves it: a full ARN or `family:revision`
   * names that revision; a bare family its latest ACTIVE one.
   */
  #revision(name: string): Revision | undefined {
    const [, family = '', revision] =
      /^(?:arn:[^:]+:ecs:[^:]+:\d+:task-definition\/)?([A-Za-z0-9_-]+)(?::(\d+))?$/.exec(name) ?? [];
    const revisions = this.#revisions.get(family) ?? [];
    if (revision !== undefined) return revisions.find((r) => r.revision === Number(revision));
    return revisions.filter((r) => r.status === 'ACTIVE').at(-1);
  }

  async #runTask(params: Cfn): Promise<Task> {
    const template = this.#options.template;
    const cluster = String(params.Cluster ?? '');
    const clusterId = this.#clusterId(cluster);
    const requested = String(params.TaskDefinition ?? '');
    const revision = this.#revision(requested);
    // ECS's answers: a revision it does not know, and one a redeploy has deregistered.
    if (!revision) throw new NamedError('ECS.ClientException', 'Unable to describe task definition.');
    if (revision.status === 'INACTIVE')
      throw new NamedError('ECS.ClientException', 'TaskDefinition is inactive');
    const taskDefinitionArn = revisionArn(revision.family, revision.revision);
    const strategy = (params.CapacityProviderStrategy ?? []) as Array<{ CapacityProvider: string }>;
    const providers = this.#capacityProviders(clusterId);
    if (strategy.length === 0 || strategy.some((s) => !providers.includes(s.CapacityProvider))) {
      throw new NamedError(
        'ECS.InvalidParameterException',
        `The specified capacity provider strategy ${JSON.stringify(strategy)} uses a provider the cluster does not have (${providers.join(', ')})`,
      );
    }
    this.#checkNetwork(params.NetworkConfiguration);
    const overrides = params.Overrides ?? {};
    if (JSON.stringify(camelCase(overrides)).length > OVERRIDES_MAX) {
      throw new NamedError(
        'ECS.InvalidParameterException',
        'Container Overrides length must be at most 8192',
      );
    }

    const properties = (revision.properties ??
      resolve(template.Resources[revision.logicalId!]!.Properties as Cfn, template)) as Cfn;
    const defs = properties.ContainerDefinitions as Cfn[];
    const byName = new Map<string, Cfn>(defs.map((d) => [d.Name, d]));
    for (const o of overrides.ContainerOverrides ?? []) {
      if (!byName.has(o.Name)) {
        throw new NamedError(
          'ECS.InvalidParameterException',
          `Override for container named ${o.Name} is not a container in the TaskDefinition.`,
        );
      }
    }
    const overrideOf = (name: string) =>
      (overrides.ContainerOverrides ?? []).find((o: Cfn) => o.Name === name);
    const environment: Record<string, Record<string, string>> = {};
    for (const d of defs) {
      const env: Record<string, string> = {};
      for (const e of [...(d.Environment ?? []), ...(overrideOf(d.Name)?.Environment ?? [])])
        env[e.Name] = String(e.Value);
      environment[d.Name] = env;
    }

    const startedBy = String(params.StartedBy ?? '');
    const key = JSON.stringify([cluster, taskDefinitionArn, startedBy, overrides]);
    const attempt = (this.#attempts.get(key) ?? 0) + 1;
    this.#attempts.set(key, attempt);
    const extra = this.#options.misbehave?.({ startedBy, attempt, environment }) ?? {};

    const id = randomUUID().replaceAll('-', '');
    const containers: TaskContainer[] = defs.map((d) => {
      const command = overrideOf(d.Name)?.Command ?? d.Command;
      return {
        name: d.Name,
        image: d.Image,
        essential: d.Essential !== false,
        stopTimeoutS: d.StopTimeout ?? DEFAULT_STOP_TIMEOUT_S,
        definition: d,
        ...(command ? { command } : {}),
        env: {
          ...this.#options.platformEnvironment,
          ECS_CONTAINER_METADATA_URI_V4: `${this.taskMetadataBase ?? this.endpoint}${METADATA_PATH}${id}`,
          ...environment[d.Name],
          ...extra[d.Name],
        },
        dependsOn: (d.DependsOn ?? []).map((x: Cfn) => ({
          container: x.ContainerName,
          condition: x.Condition,
        })),
        started: deferred<void>(),
        exited: deferred<number | undefined>(),
        running: false,
        output: '',
      };
    });
    const cpu = overrides.Cpu ?? properties.Cpu;
    const memory = overrides.Memory ?? properties.Memory;
    const task: Task = {
      id,
      arn: `arn:${PLACEHOLDER_ENV.partition}:ecs:${PLACEHOLDER_ENV.region}:${PLACEHOLDER_ENV.account}:task/${clusterId}/${id}`,
      cluster,
      taskDefinitionArn,
      startedBy,
      capacityProvider: strategy[0]!.CapacityProvider,
      overrides,
      ...(cpu ? { cpu: String(cpu) } : {}),
      ...(memory ? { memory: String(memory) } : {}),
      volumes: properties.Volumes ?? [],
      attempt,
      createdAt: Date.now(),
      containers,
      desiredStatus: 'RUNNING',
      lastStatus: 'PROVISIONING',
      stopping: deferred<void>(),
      stopped: deferred<void>(),
    };
    this.#tasks.push(task);
    try {
      await this.#engine.provision(task);
    } catch (e) {
      this.#tasks.splice(this.#tasks.indexOf(task), 1);
      await this.#engine.release(task);
      throw e;
    }
    task.lastStatus = 'RUNNING';
    task.startedAt = Date.now();
    for (const c of containers) {
      void this.#runContainer(task, c).catch((e: Error) => {
        c.reason = `CannotStartContainerError: ${e.message}`;
        c.exited.resolve(undefined);
        this.#containerEnded(task, c);
      });
    }
    return task;
  }

  async #runContainer(task: Task, c: TaskContainer): Promise<void> {
    for (const dep of c.dependsOn) {
      const other = task.containers.find((x) => x.name === dep.container)!;
      const met = await Promise.race([
        this.#dependencyMet(task, other, dep.condition),
        task.stopping.promise.then(() => false),
      ]);
      if (!met) {
        if (task.desiredStatus === 'RUNNING')
          c.reason = `DependencyConditionNotSatisfied: ${dep.container} did not reach ${dep.condition}`;
        c.exited.resolve(undefined);
        return this.#containerEnded(task, c);
      }
    }
    if (task.desiredStatus === 'STOPPED') {
      c.exited.resolve(undefined);
      return;
    }
    c.running = true;
    c.exitCode = await this.#engine.run(task, c);
    c.exited.resolve(c.exitCode);
    this.#containerEnded(task, c);
  }

  async #dependencyMet(task: Task, other: TaskContainer, condition: string): Promise<boolean> {
    switch (condition) {
      case 'START':
        await Promise.race([other.started.promise, other.exited.promise]);
        return other.running;
      case 'COMPLETE':
        return (await other.exited.promise) !== undefined;
      case 'SUCCESS':
        return (await other.exited.promise) === 0;
      case 'HEALTHY':
        await Promise.race([other.started.promise, other.exited.promise]);
        return other.running && this.#engine.healthy(task, other);
      default:
        throw new Error(`unknown dependsOn condition ${condition}`);
    }
  }

  /** ECS stops the task when an essential container exits, and reports it stopped once all have. */
  #containerEnded(task: Task, c: TaskContainer): void {
    if (c.essential && task.desiredStatus === 'RUNNING') {
      void this.#stopTask(task, 'EssentialContainerExited', 'Essential container in task exited');
    }
  }

  async #stopTask(task: Task, stopCode: string, reason: string): Promise<void> {
    if (task.desiredStatus === 'STOPPED') return task.stopped.promise;
    task.desiredStatus = 'STOPPED';
    task.stopCode = stopCode;
    task.stoppedReason = reason;
    task.stoppingAt = Date.now();
    task.stopping.resolve();
    await Promise.all(
      task.containers.map(async (c) => {
        if (c.running) await this.#engine.stop(task, c);
        else c.exited.resolve(undefined); // never started (a dependency unmet, or stopped first)
        await c.exited.promise;
      }),
    );
    await this.#engine.release(task);
    task.lastStatus = 'STOPPED';
    task.stoppedAt = Date.now();
    task.stopped.resolve();
  }

  /** DescribeTasks' task, in the API's camelCase. */
  #describe(task: Task): Record<string, unknown> {
    return {
      attachments: [],
      availabilityZone: `${PLACEHOLDER_ENV.region}a`,
      capacityProviderName: task.capacityProvider,
      clusterArn: task.cluster,
      containers: task.containers.map((c) => ({
        containerArn: `${task.arn.replace(':task/', ':container/')}/${c.name}`,
        taskArn: task.arn,
        name: c.name,
        image: c.image,
        lastStatus: c.exitCode !== undefined || task.lastStatus === 'STOPPED' ? 'STOPPED' : 'RUNNING',
        ...(c.exitCode !== undefined ? { exitCode: c.exitCode } : {}),
        ...(c.reason ? { reason: c.reason } : {}),
        networkInterfaces: [],
      })),
      ...(task.cpu ? { cpu: task.cpu } : {}),
      ...(task.memory ? { memory: task.memory } : {}),
      createdAt: task.createdAt,
      desiredStatus: task.desiredStatus,
      lastStatus: task.lastStatus,
      launchType: task.capacityProvider.startsWith('FARGATE') ? 'FARGATE' : 'EC2',
      overrides: camelCase(task.overrides),
      ...(task.startedAt ? { startedAt: task.startedAt } : {}),
      startedBy: task.startedBy,
      ...(task.stopCode ? { stopCode: task.stopCode } : {}),
      ...(task.stoppedAt ? { stoppedAt: task.stoppedAt } : {}),
      ...(task.stoppedReason ? { stoppedReason: task.stoppedReason } : {}),
      ...(task.stoppingAt ? { stoppingAt: task.stoppingAt } : {}),
      taskArn: task.arn,
      taskDefinitionArn: task.taskDefinitionArn,
      version: task.lastStatus === 'STOPPED' ? 3 : 2,
    };
  }

  #clusterId(cluster: string): string {
    const id = /:cluster\/([A-Za-z0-9]+)$/.exec(cluster)?.[1];
    if (!id || this.#options.template.Resources[id]?.Type !== 'AWS::ECS::Cluster') {
      throw new NamedError('ECS.ClusterNotFoundException', `Cluster not found: ${cluster}`);
    }
    return id;
  }

  #capacityProviders(clusterId: string): string[] {
    const template = this.#options.template;
    return Object.values(template.Resources)
      .filter((r) => r.Type === 'AWS::ECS::ClusterCapacityProviderAssociations')
      .map((r) => resolve(r.Properties as Cfn, template) as Cfn)
      .filter((p) => p.Cluster === clusterId)
      .flatMap((p) => p.CapacityProviders as string[]);
  }

  /** Subnets and security groups must be the deployment's own (ECS would reject unknown ids). */
  #checkNetwork(network: Cfn): void {
    const vpc = network?.AwsvpcConfiguration;
    const known = (type: string, ref: string) =>
      this.#options.template.Resources[ref.replace(/\.GroupId$/, '')]?.Type === type;
    const bad = [
      ...(vpc?.Subnets ?? []).filter((s: string) => !known('AWS::EC2::Subnet', s)),
      ...(vpc?.SecurityGroups ?? []).filter((g: string) => !known('AWS::EC2::SecurityGroup', g)),
    ];
    if (!vpc || bad.length > 0 || (vpc.Subnets ?? []).length === 0) {
      throw new NamedError(
        'ECS.InvalidParameterException',
        `Network Configuration must name the deployment's subnets and security groups; got ${JSON.stringify(network)}`,
      );
    }
  }

  async #api(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const target = String(req.headers['x-amz-target'] ?? '');
    const action = target.slice(target.lastIndexOf('.') + 1);
    const input = chunks.length
      ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, Cfn>)
      : {};
    this.apiCalls.push({ action, input });
    const inCluster = (t: Task) => input.cluster === undefined || t.cluster === input.cluster;
    if (input.cluster !== undefined) {
      try {
        this.#clusterId(String(input.cluster));
      } catch (e) {
        return sendJson(res, 400, { __type: 'ClusterNotFoundException', message: (e as Error).message });
      }
    }
    switch (action) {
      case 'ListTasks': {
        const desired = input.desiredStatus ?? 'RUNNING';
        const arns = this.#tasks
          .filter((t) => inCluster(t) && t.desiredStatus === desired)
          .filter((t) => input.startedBy === undefined || t.startedBy === input.startedBy)
          .map((t) => t.arn);
        return sendJson(res, 200, { taskArns: arns });
      }
      case 'DescribeTasks': {
        const found = this.#tasks.filter((t) => inCluster(t) && (input.tasks as string[]).includes(t.arn));
        return sendJson(res, 200, { tasks: found.map((t) => this.#describe(t)), failures: [] });
      }
      case 'StopTask': {
        const task = this.#tasks.find((t) => inCluster(t) && t.arn === input.task);
        if (!task)
          return sendJson(res, 400, {
            __type: 'InvalidParameterException',
            message: `The referenced task was not found.`,
          });
        void this.#stopTask(task, 'UserInitiated', String(input.reason ?? 'Task stopped by user'));
        return sendJson(res, 200, { task: this.#describe(task) });
      }
      case 'RegisterTaskDefinition': {
        const family = String(input.family ?? '');
        if (!/^[A-Za-z0-9_-]{1,255}$/.test(family))
          return sendJson(res, 400, {
            __type: 'ClientException',
            message: `Family contains invalid characters or is too long: ${family}`,
          });
        const revisions = this.#revisions.get(family) ?? [];
        this.#revisions.set(family, revisions);
        const revision = revisions.length + 1;
        revisions.push({ family, revision, properties: pascalCase(input), status: 'ACTIVE' });
        return sendJson(res, 200, {
          taskDefinition: {
            ...input,
            taskDefinitionArn: revisionArn(family, revision),
            revision,
            status: 'ACTIVE',
          },
        });
      }
      case 'DescribeTaskDefinition': {
        const found = this.#revision(String(input.taskDefinition ?? ''));
        if (!found)
          return sendJson(res, 400, {
            __type: 'ClientException',
            message: 'Unable to describe task definition.',
          });
        const properties =
          found.properties ??
          resolve(
            this.#options.template.Resources[found.logicalId!]!.Properties as Cfn,
            this.#options.template,
          );
        return sendJson(res, 200, {
          taskDefinition: {
            ...camelCase(properties),
            taskDefinitionArn: revisionArn(found.family, found.revision),
            revision: found.revision,
            status: found.status,
          },
        });
      }
      default:
        return sendJson(res, 400, {
          __type: 'UnknownOperationException',
          message: `${target} is not served here`,
        });
    }
  }
}

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Step Functions' ECS integration speaks PascalCase; the ECS API camelCase. */
function pascalCase(value: unknown): Asl {
  return recase(value, (k) => k[0]!.toUpperCase() + k.slice(1));
}

function camelCase(value: unknown): Asl {
  return recase(value, (k) => k[0]!.toLowerCase() + k.slice(1));
}

function recase(value: unknown, key: (k: string) => string): unknown {
  if (Array.isArray(value)) return value.map((v) => recase(v, key));
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [key(k), recase(v, key)]));
}

/**
 * The default engine: each container is a process on this machine, started from the repository root
 * with the argv its image maps to (`LocalImage`). No isolation: ports are free ports of this machine
 * (rewritten in the other containers' environment), volumes and users are not modelled, and a
 * container counts as healthy once started.
 */
class ProcessEngine implements ContainerEngine {
  readonly #images: Readonly<Record<string, LocalImage>>;
  readonly #children = new Map<TaskContainer, ChildProcess>();

  constructor(images: Readonly<Record<string, LocalImage>>) {
    this.#images = images;
  }

  #image(c: TaskContainer): LocalImage {
    const image = this.#images[c.image];
    if (!image)
      throw new NamedError(
        'States.TaskFailed',
        `no local stand-in for the image ${c.image} of container ${c.name}`,
      );
    return image;
  }

  /** A container port is a free port here; the task's other containers are told where it went. */
  async provision(task: EngineTask): Promise<void> {
    for (const c of task.containers) {
      const image = this.#image(c);
      const containerPort = c.definition.PortMappings?.[0]?.ContainerPort;
      if (containerPort === undefined) continue;
      if (!image.portVariable)
        throw new Error(`the image ${c.image} maps a port but its LocalImage names no portVariable`);
      const port = await freePort();
      c.env[image.portVariable] = String(port);
      const from = new RegExp(`(127\\.0\\.0\\.1|localhost):${containerPort}\\b`, 'g');
      for (const other of task.containers) {
        if (other === c) continue;
        for (const [k, v] of Object.entries(other.env)) other.env[k] = v.replace(from, `127.0.0.1:${port}`);
      }
    }
  }

  async run(_task: EngineTask, c: TaskContainer): Promise<number | undefined> {
    const image = this.#image(c);
    const argv = [...image.entryPoint, ...(c.command ?? image.command ?? [])];
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...c.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#children.set(c, child);
    const append = (chunk: Buffer) => {
      c.output = (c.output + chunk.toString('utf8')).slice(-LOG_LIMIT);
    };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    child.once('spawn', () => c.started.resolve());
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
      child.once('error', (e) => {
        c.reason = `CannotStartContainerError: ${e.message}`;
        resolve([null, null]);
      });
      child.once('close', (exitCode, sig) => resolve([exitCode, sig]));
    });
    // As Docker reports it: a process ended by a signal exits 128 + the signal's number.
    return code ?? (signal ? 128 + constants.signals[signal] : undefined);
  }

  async healthy(): Promise<boolean> {
    return true;
  }

  async stop(_task: EngineTask, c: TaskContainer): Promise<void> {
    const child = this.#children.get(c);
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), c.stopTimeoutS * 1000);
      await c.exited.promise;
      clearTimeout(kill);
    }
  }

  async release(task: EngineTask): Promise<void> {
    for (const c of task.containers) this.#children.delete(c);
  }
}
