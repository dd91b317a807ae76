import { createHash } from 'node:crypto';
import type { TaskPlatform } from '../contract/deployment';
import { SIDECAR_SHARE } from '../job/instances';

export type { TaskPlatform };

/**
 * The ECS task definition of a model: ONE builder for both paths that register one, so they cannot
 * drift. The CDK construct (lib/models.ts) synthesizes it for the models a deployment declares; the
 * Validate step registers it at run time for a model made with CreateModel. The shape is ECS's
 * RegisterTaskDefinition request (camelCase), which is also what CDK's CfnTaskDefinition takes.
 *
 * Three containers:
 *   fetch-model  (sidecar image, `fetch-model`, not essential) extracts ModelDataUrl into /opt/ml/model
 *   model        (the user's image, `serve`) starts once fetch-model has exited successfully
 *   sidecar      (essential) reads the partition, invokes the model, writes outputs; when it exits the task ends
 *
 * The model container is not essential on purpose: ECS stops it when the sidecar finishes, and a
 * model that dies mid-job is reported by the sidecar, which names the object it was working on.
 */

/** Container names in every task definition; the state machine's RunTask overrides address them. */
export const CONTAINERS = { model: 'model', sidecar: 'sidecar', fetchModel: 'fetch-model' } as const;

/** SageMaker's largest ModelDataDownloadTimeoutInSeconds: the default download budget. */
export const MODEL_DATA_DOWNLOAD_TIMEOUT_S = 3600;
/** Where a model's artifacts are extracted, as SageMaker does. */
const MODEL_DIR = '/opt/ml/model';
/** SageMaker's model server port; tasks use awsvpc networking, so the sidecar reaches it on localhost. */
const MODEL_PORT = 8080;
/**
 * A Fargate task definition is registered at the smallest size the catalog uses; every job's RunTask
 * overrides the task size with its instance type's (Fargate accepts task-level CPU and memory overrides).
 */
export const FARGATE_REGISTERED_SIZE = { cpu: 2048, memoryMiB: 4096 } as const;
/** Seconds between SIGTERM and SIGKILL: the model needs little; the sidecar aborts uploads and reports. */
const MODEL_STOP_TIMEOUT_S = 30;
const SIDECAR_STOP_TIMEOUT_S = 60;

/** What runs in a model's task: the model's own settings, as declared or as created. */
export interface TaskModel {
  /** The ModelName: the prefix of the task's log streams (`<model>/<container>/<task id>`). */
  readonly name: string;
  /** The inference image's URI. */
  readonly image: string;
  readonly modelDataUrl?: string;
  readonly environment?: Readonly<Record<string, string>>;
  /** @default MODEL_DATA_DOWNLOAD_TIMEOUT_S */
  readonly modelDataDownloadTimeoutSeconds?: number;
  /** Fargate task storage (21–200 GiB). @default Fargate's 20 */
  readonly ephemeralStorageGiB?: number;
}

/** The size a task definition is registered at. */
export type TaskSize =
  | { readonly compatibility: 'FARGATE' }
  | {
      readonly compatibility: 'EC2';
      readonly cpu: number;
      readonly memoryMiB: number;
      readonly gpus: number;
      readonly neuronDevices: number;
    };

export interface KeyValuePair {
  readonly name: string;
  readonly value: string;
}

export interface ContainerLayout {
  readonly name: string;
  readonly image: string;
  /** @default the image's CMD */
  readonly command?: readonly string[];
  readonly essential: boolean;
  readonly readonlyRootFilesystem?: boolean;
  readonly cpu?: number;
  readonly memoryReservation?: number;
  readonly environment?: readonly KeyValuePair[];
  readonly portMappings?: ReadonlyArray<{ readonly containerPort: number; readonly protocol: 'tcp' }>;
  readonly mountPoints?: ReadonlyArray<{
    readonly sourceVolume: string;
    readonly containerPath: string;
    readonly readOnly: boolean;
  }>;
  readonly dependsOn?: ReadonlyArray<{ readonly containerName: string; readonly condition: 'SUCCESS' }>;
  readonly linuxParameters: {
    readonly initProcessEnabled: true;
    readonly devices?: ReadonlyArray<{
      readonly hostPath: string;
      readonly containerPath: string;
      readonly permissions: readonly string[];
    }>;
  };
  readonly logConfiguration: {
    readonly logDriver: 'awslogs';
    readonly options: Readonly<Record<string, string>>;
  };
  readonly resourceRequirements?: ReadonlyArray<{ readonly type: 'GPU'; readonly value: string }>;
  readonly stopTimeout?: number;
}

/** A RegisterTaskDefinition request (the members this project sets). */
export interface TaskDefinitionLayout {
  readonly family: string;
  readonly taskRoleArn: string;
  readonly executionRoleArn: string;
  readonly networkMode: 'awsvpc';
  readonly requiresCompatibilities: readonly ['FARGATE' | 'EC2'];
  readonly cpu: string;
  readonly memory: string;
  readonly runtimePlatform?: { readonly cpuArchitecture: 'X86_64'; readonly operatingSystemFamily: 'LINUX' };
  readonly ephemeralStorage?: { readonly sizeInGiB: number };
  readonly volumes: ReadonlyArray<{ readonly name: string }>;
  readonly containerDefinitions: readonly ContainerLayout[];
}

/** The task definition of `model` at `size` on `platform`, named `family`. */
export function taskDefinitionLayout(
  family: string,
  model: TaskModel,
  size: TaskSize,
  platform: TaskPlatform,
): TaskDefinitionLayout {
  const fargate = size.compatibility === 'FARGATE';
  const withArtifacts = model.modelDataUrl !== undefined;
  const logConfiguration = {
    logDriver: 'awslogs',
    options: {
      'awslogs-group': platform.logGroup,
      // awslogs names each stream `<prefix>/<container>/<task id>`: the model's name is the prefix.
      'awslogs-stream-prefix': model.name,
      'awslogs-region': platform.region,
    },
  } as const;
  const afterFetch = withArtifacts
    ? { dependsOn: [{ containerName: CONTAINERS.fetchModel, condition: 'SUCCESS' as const }] }
    : {};
  const env = (vars: Readonly<Record<string, string>>) => {
    const entries = Object.entries(vars);
    return entries.length > 0 ? { environment: entries.map(([name, value]) => ({ name, value })) } : {};
  };
  const scratch = { sourceVolume: 'scratch', containerPath: '/tmp', readOnly: false };
  const modelVolume = { sourceVolume: 'model', containerPath: MODEL_DIR, readOnly: false };

  const containers: ContainerLayout[] = [];
  if (model.modelDataUrl) {
    containers.push({
      name: CONTAINERS.fetchModel,
      image: platform.sidecarImage,
      command: ['fetch-model'],
      essential: false,
      readonlyRootFilesystem: true,
      ...env({
        MODEL_DATA_URL: model.modelDataUrl,
        MODEL_DIR,
        MODEL_DATA_DOWNLOAD_TIMEOUT_SECONDS: String(
          model.modelDataDownloadTimeoutSeconds ?? MODEL_DATA_DOWNLOAD_TIMEOUT_S,
        ),
        AWS_REGION: platform.region,
      }),
      mountPoints: [modelVolume, scratch],
      linuxParameters: { initProcessEnabled: true },
      logConfiguration,
    });
  }
  const neuronDevices = size.compatibility === 'EC2' ? size.neuronDevices : 0;
  const gpus = size.compatibility === 'EC2' ? size.gpus : 0;
  containers.push({
    name: CONTAINERS.model,
    image: model.image,
    command: ['serve'],
    essential: false,
    ...env(model.environment ?? {}),
    portMappings: [{ containerPort: MODEL_PORT, protocol: 'tcp' }],
    // Only with artifacts: an image may carry its model at /opt/ml/model, which a volume would hide.
    ...(withArtifacts ? { mountPoints: [modelVolume] } : {}),
    ...afterFetch,
    linuxParameters: {
      initProcessEnabled: true,
      ...(neuronDevices > 0
        ? {
            devices: Array.from({ length: neuronDevices }, (_, d) => ({
              hostPath: `/dev/neuron${d}`,
              containerPath: `/dev/neuron${d}`,
              permissions: ['read', 'write'],
            })),
          }
        : {}),
    },
    logConfiguration,
    ...(gpus > 0 ? { resourceRequirements: [{ type: 'GPU', value: String(gpus) }] } : {}),
    stopTimeout: MODEL_STOP_TIMEOUT_S,
  });
  containers.push({
    name: CONTAINERS.sidecar,
    image: platform.sidecarImage,
    essential: true,
    readonlyRootFilesystem: true,
    cpu: SIDECAR_SHARE.cpu,
    memoryReservation: SIDECAR_SHARE.memoryMiB,
    // JOB_URI, PLAN_URI and PARTITION_INDEX come from the RunTask overrides of each partition.
    // MODEL_CONTAINER: whose exit the sidecar reads from the task metadata while it waits for /ping.
    ...env({
      MODEL_URL: `http://127.0.0.1:${MODEL_PORT}`,
      MODEL_CONTAINER: CONTAINERS.model,
      METRICS: 'emf',
      AWS_REGION: platform.region,
    }),
    mountPoints: [scratch],
    // The model's start-up budget begins once its artifacts are in place; a failed fetch-model
    // stops the task at once (the sidecar never starts) instead of costing that whole budget.
    ...afterFetch,
    linuxParameters: { initProcessEnabled: true },
    logConfiguration,
    // Time to abort open multipart uploads and write a final progress report after SIGTERM.
    stopTimeout: SIDECAR_STOP_TIMEOUT_S,
  });

  return {
    family,
    taskRoleArn: platform.taskRoleArn,
    executionRoleArn: platform.executionRoleArn,
    networkMode: 'awsvpc',
    requiresCompatibilities: [size.compatibility],
    cpu: String(fargate ? FARGATE_REGISTERED_SIZE.cpu : size.cpu),
    memory: String(fargate ? FARGATE_REGISTERED_SIZE.memoryMiB : size.memoryMiB),
    ...(fargate
      ? {
          runtimePlatform: { cpuArchitecture: 'X86_64', operatingSystemFamily: 'LINUX' },
          ...(model.ephemeralStorageGiB
            ? { ephemeralStorage: { sizeInGiB: model.ephemeralStorageGiB } }
            : {}),
        }
      : {}),
    volumes: [...(withArtifacts ? [{ name: 'model' }] : []), { name: 'scratch' }],
    containerDefinitions: containers,
  };
}

/**
 * The family of a model's task definition registered at run time: `<prefix><hash of the layout>`.
 * Identical layouts (same model, size, roles, sidecar and log group) share one family, so a model
 * used by many jobs registers once; anything that changes the layout (a new sidecar release after a
 * redeploy) gives a new family. The prefix is what IAM scopes RegisterTaskDefinition and RunTask to.
 */
export function layoutFamily(prefix: string, layout: Omit<TaskDefinitionLayout, 'family'>): string {
  const { family: _ignored, ...rest } = layout as TaskDefinitionLayout;
  return `${prefix}${createHash('sha256').update(canonicalJson(rest)).digest('hex').slice(0, LAYOUT_HASH_CHARS)}`;
}

/** 20 hex digits (80 bits): collisions between layouts of one deployment are out of reach. */
const LAYOUT_HASH_CHARS = 20;

/** JSON with object keys sorted, so equal layouts hash equally whatever order built them. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}
