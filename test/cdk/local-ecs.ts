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
 *     every essential container exited 0, else a `States.TaskFailed` whose cause is that task as JSON.
 *   - `endpoint` is an ECS API endpoint (JSON 1.1 protocol: ListTasks, DescribeTasks, StopTask) for
 *     the Lambdas' own ECS client, reached through `AWS_ENDPOINT_URL_ECS`.
 *
 * Local differences: the containers of a task share this machine's loopback with other tasks, so a
 * container port (the model's 8080) is a free port here, and `127.0.0.1:<container port>` in the
 * other containers' environment is rewritten to it. Credentials and the S3 endpoint come from
 * `platformEnvironment` (in ECS: the task role and the real S3).
 */

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
  /** Image (as the task definition names it) → how it runs here. */
  readonly images: Readonly<Record<string, LocalImage>>;
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
  /** Each container's output (stdout and stderr, the last 64 KiB), for diagnosing a failed test. */
  readonly logs: Readonly<Record<string, string>>;
}

/** An ECS API call the endpoint received. */
export interface EcsApiCall {
  readonly action: string;
  readonly input: Record<string, unknown>;
}

const LOG_LIMIT = 64 * 1024;
/** ECS caps a RunTask's `overrides` at 8 KiB of JSON. */
const OVERRIDES_MAX = 8192;
/** ECS's default stop timeout: SIGTERM, then SIGKILL this long after. */
const DEFAULT_STOP_TIMEOUT_S = 30;

class NamedError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

interface Container {
  readonly name: string;
  readonly image: string;
  readonly essential: boolean;
  readonly stopTimeoutS: number;
  readonly argv: readonly string[];
  env: Record<string, string>;
  readonly dependsOn: ReadonlyArray<{ readonly container: string; readonly condition: string }>;
  readonly containerPort?: number;
  readonly portVariable?: string;
  process?: ChildProcess;
  started: Deferred<void>;
  exited: Deferred<number | undefined>;
  exitCode?: number;
  reason?: string;
  output: string;
}

interface Task {
  readonly arn: string;
  readonly cluster: string;
  readonly taskDefinitionArn: string;
  readonly startedBy: string;
  readonly capacityProvider: string;
  readonly overrides: Cfn;
  readonly cpu?: string;
  readonly memory?: string;
  readonly attempt: number;
  readonly createdAt: number;
  readonly containers: Container[];
  desiredStatus: 'RUNNING' | 'STOPPED';
  lastStatus: 'PROVISIONING' | 'RUNNING' | 'STOPPED';
  startedAt?: number;
  stoppingAt?: number;
  stoppedAt?: number;
  stopCode?: string;
  stoppedReason?: string;
  readonly stopped: Deferred<void>;
}

export class LocalEcs {
  readonly #options: LocalEcsOptions;
  readonly #server: http.Server;
  readonly #tasks: Task[] = [];
  readonly #attempts = new Map<string, number>();
  /** Every ECS API call the endpoint answered, in order. */
  readonly apiCalls: EcsApiCall[] = [];

  private constructor(options: LocalEcsOptions) {
    this.#options = options;
    this.#server = http.createServer((req, res) => {
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
      logs: Object.fromEntries(t.containers.map((c) => [c.name, c.output])),
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

  /** The handler of the `ecs:runTask.sync` state: its input is the state's evaluated Parameters. */
  readonly runTaskSync = async (params: Cfn): Promise<unknown> => {
    const task = await this.#runTask(params);
    await task.stopped.promise;
    const description = pascalCase(this.#describe(task));
    const essentialFailed = task.containers.some((c) => c.essential && c.exitCode !== 0);
    if (task.stopCode !== 'EssentialContainerExited' || essentialFailed) {
      throw new NamedError('States.TaskFailed', JSON.stringify(description));
    }
    return description;
  };

  async #runTask(params: Cfn): Promise<Task> {
    const template = this.#options.template;
    const cluster = String(params.Cluster ?? '');
    const clusterId = this.#clusterId(cluster);
    const taskDefinitionArn = String(params.TaskDefinition ?? '');
    const definitionId = /:task-definition\/([A-Za-z0-9]+):\d+$/.exec(taskDefinitionArn)?.[1];
    const definition = definitionId ? template.Resources[definitionId] : undefined;
    if (definition?.Type !== 'AWS::ECS::TaskDefinition') {
      throw new NamedError('ECS.ClientException', `TaskDefinition not found: ${taskDefinitionArn}`);
    }
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

    const defs = resolve((definition.Properties as Cfn).ContainerDefinitions, template) as Cfn[];
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

    const containers: Container[] = defs.map((d) => {
      const image = this.#options.images[d.Image];
      if (!image)
        throw new NamedError(
          'States.TaskFailed',
          `no local stand-in for the image ${d.Image} of container ${d.Name}`,
        );
      const command = overrideOf(d.Name)?.Command ?? d.Command ?? image.command ?? [];
      return {
        name: d.Name,
        image: d.Image,
        essential: d.Essential !== false,
        stopTimeoutS: d.StopTimeout ?? DEFAULT_STOP_TIMEOUT_S,
        argv: [...image.entryPoint, ...command],
        env: { ...this.#options.platformEnvironment, ...environment[d.Name], ...extra[d.Name] },
        dependsOn: (d.DependsOn ?? []).map((x: Cfn) => ({
          container: x.ContainerName,
          condition: x.Condition,
        })),
        ...(d.PortMappings?.[0] ? { containerPort: Number(d.PortMappings[0].ContainerPort) } : {}),
        ...(image.portVariable ? { portVariable: image.portVariable } : {}),
        started: deferred<void>(),
        exited: deferred<number | undefined>(),
        output: '',
      };
    });
    const task: Task = {
      arn: `arn:${PLACEHOLDER_ENV.partition}:ecs:${PLACEHOLDER_ENV.region}:${PLACEHOLDER_ENV.account}:task/${clusterId}/${randomUUID().replaceAll('-', '')}`,
      cluster,
      taskDefinitionArn,
      startedBy,
      capacityProvider: strategy[0]!.CapacityProvider,
      overrides,
      ...(overrides.Cpu ? { cpu: String(overrides.Cpu) } : {}),
      ...(overrides.Memory ? { memory: String(overrides.Memory) } : {}),
      attempt,
      createdAt: Date.now(),
      containers,
      desiredStatus: 'RUNNING',
      lastStatus: 'PROVISIONING',
      stopped: deferred<void>(),
    };
    this.#tasks.push(task);
    await this.#mapPorts(task);
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

  /** A container port is a free port here; the task's other containers are told where it went. */
  async #mapPorts(task: Task): Promise<void> {
    for (const c of task.containers) {
      if (c.containerPort === undefined) continue;
      if (!c.portVariable)
        throw new Error(`the image ${c.image} maps a port but its LocalImage names no portVariable`);
      const port = await freePort();
      c.env[c.portVariable] = String(port);
      const from = new RegExp(`(127\\.0\\.0\\.1|localhost):${c.containerPort}\\b`, 'g');
      for (const other of task.containers) {
        if (other === c) continue;
        for (const [k, v] of Object.entries(other.env)) other.env[k] = v.replace(from, `127.0.0.1:${port}`);
      }
    }
  }

  async #runContainer(task: Task, c: Container): Promise<void> {
    for (const dep of c.dependsOn) {
      const other = task.containers.find((x) => x.name === dep.container)!;
      if (dep.condition === 'START') await other.started.promise;
      else {
        const code = await other.exited.promise;
        if (dep.condition === 'SUCCESS' && code !== 0) {
          c.reason = `dependency ${dep.container} did not succeed`;
          c.exited.resolve(undefined);
          return this.#containerEnded(task, c);
        }
      }
    }
    if (task.desiredStatus === 'STOPPED') {
      c.exited.resolve(undefined);
      return;
    }
    const child = spawn(c.argv[0]!, c.argv.slice(1), {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...c.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    c.process = child;
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
    c.exitCode = code ?? (signal ? 128 + constants.signals[signal] : undefined);
    c.exited.resolve(c.exitCode);
    this.#containerEnded(task, c);
  }

  /** ECS stops the task when an essential container exits, and reports it stopped once all have. */
  #containerEnded(task: Task, c: Container): void {
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
    await Promise.all(
      task.containers.map(async (c) => {
        const child = c.process;
        if (!child) {
          c.exited.resolve(undefined); // never started (its dependency did not succeed, or it was stopped first)
          return;
        }
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const kill = setTimeout(() => child.kill('SIGKILL'), c.stopTimeoutS * 1000);
          await c.exited.promise;
          clearTimeout(kill);
        }
        await c.exited.promise;
      }),
    );
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
      default:
        return sendJson(res, 400, {
          __type: 'UnknownOperationException',
          message: `${target} is not served here`,
        });
    }
  }
}

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
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
