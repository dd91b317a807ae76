import { existsSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { Aws, Duration, Names, Stack } from 'aws-cdk-lib';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { taskDefinitionFamily } from '../src/contract/deployment';
import { ec2TaskMemoryMiB, SIDECAR_SHARE } from '../src/job/instances';
import { ENVIRONMENT_KEY, MODEL_NAME } from '../src/job/schema';
import { parseLocation } from '../src/storage/uri';
import { ec2Spec } from './compute';
import { acknowledge, acknowledgeWildcards } from './nag';
import { repositoryImage } from './images';
import type { TransformStorage } from './storage';

/** A model a deployment can run: what a request's ModelName resolves to. */
export interface ModelProps {
  /**
   * The inference container (SageMaker's contract: `serve`, port 8080, /ping, /invocations): an
   * `ecs.ContainerImage`, a local directory holding a Dockerfile, or a registry URI such as
   * `123456789012.dkr.ecr.eu-west-1.amazonaws.com/my-model:1.4` (pull access to ECR URIs is granted).
   */
  readonly image: ecs.ContainerImage | string;
  /** `s3://…/model.tar.gz`, extracted to /opt/ml/model before the model starts. @default no artifacts */
  readonly modelDataUrl?: string;
  /** The customer-managed KMS key `modelDataUrl` is encrypted with; the tasks get kms:Decrypt on it. @default none (SSE-S3) */
  readonly modelDataKey?: kms.IKey;
  /** The model container's environment; a job's Environment overrides it. @default {} */
  readonly environment?: Readonly<Record<string, string>>;
  /**
   * How long `fetch-model` may take to download and extract `modelDataUrl` before the task fails (the
   * download budget; the model's own start-up has its budget in the job, ModelStartupTimeoutInSeconds).
   * @default 3600 (the most SageMaker's ModelDataDownloadTimeoutInSeconds allows)
   */
  readonly modelDataDownloadTimeoutSeconds?: number;
  /** Fargate task storage for the image and the extracted artifacts (21–200). @default 20 (the free amount) */
  readonly ephemeralStorageGiB?: number;
}

/** Container names in every task definition; the state machine's RunTask overrides address them. */
export const CONTAINERS = { model: 'model', sidecar: 'sidecar', fetchModel: 'fetch-model' } as const;

/** The sidecar image (also the fetch-model init container), built with the repository root as context. */
export const SIDECAR_DOCKERFILE = 'containers/sidecar/Dockerfile';

/** SageMaker's largest ModelDataDownloadTimeoutInSeconds: the default download budget. */
const MODEL_DATA_DOWNLOAD_TIMEOUT_S = 3600;
/** Where a model's artifacts are extracted, as SageMaker does. */
const MODEL_DIR = '/opt/ml/model';
/** SageMaker's model server port; tasks use awsvpc networking, so the sidecar reaches it on localhost. */
const MODEL_PORT = 8080;
/**
 * A Fargate task definition is registered at the smallest size the catalog uses; every job's RunTask
 * overrides the task size with its instance type's (Fargate accepts task-level CPU and memory overrides).
 */
const FARGATE_REGISTERED_SIZE = { cpu: 2048, memoryMiB: 4096 } as const;

export interface ModelTasksProps {
  readonly models: Readonly<Record<string, ModelProps>>;
  /** ml.* types with EC2 capacity: each model gets a task definition sized for each. */
  readonly ec2InstanceTypes: readonly string[];
  readonly storage: TransformStorage;
  readonly logGroup: logs.ILogGroup;
  /** The sidecar image. @default built from containers/sidecar/Dockerfile */
  readonly sidecarImage?: ecs.ContainerImage;
}

/**
 * Task definitions: for every model, one for Fargate and one per enabled EC2 instance type, each
 * with three containers:
 *
 *   fetch-model  (sidecar image, `fetch-model`, not essential) extracts ModelDataUrl into /opt/ml/model
 *   model        (the user's image, `serve`) starts once fetch-model has exited successfully
 *   sidecar      (essential) reads the partition, invokes the model, writes outputs; when it exits the task ends
 *
 * The model container is not essential on purpose: ECS stops it when the sidecar finishes, and a
 * model that dies mid-job is reported by the sidecar, which names the object it was working on.
 * All task definitions share one task role: read the input locations and model artifacts, write
 * outputs and the work location, nothing else.
 */
export class ModelTasks extends Construct {
  readonly taskRole: iam.Role;
  readonly executionRole: iam.Role;
  /** ModelName → task definitions: `fargate` and one per EC2 instance type (e.g. `g5.xlarge`). */
  readonly taskDefinitions: ReadonlyMap<
    string,
    { readonly fargate: ecs.TaskDefinition; readonly ec2: ReadonlyMap<string, ecs.TaskDefinition> }
  >;
  readonly sidecarImage: ecs.ContainerImage;
  /**
   * What every task definition family of this deployment begins with (unique per stack and path):
   * jobs launch by family (`taskDefinitionFamily`), and the state machine may run `<prefix>_*`.
   */
  readonly familyPrefix: string;

  constructor(scope: Construct, id: string, props: ModelTasksProps) {
    super(scope, id);
    this.familyPrefix = Names.uniqueResourceName(this, { maxLength: 64, separator: '-' });
    const names = Object.keys(props.models);
    if (names.length === 0)
      throw new Error('models is empty: a deployment needs at least one model to run jobs with');
    for (const [name, model] of Object.entries(props.models)) checkModel(name, model);

    const stack = Stack.of(this);
    this.taskRole = new iam.Role(this, 'TaskRole', {
      description: 'Batch transform tasks: read inputs and model artifacts, write outputs and work locations',
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com', {
        conditions: {
          // Only ECS tasks of this account may assume it (confused-deputy guard).
          StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
          ArnLike: { 'aws:SourceArn': stack.formatArn({ service: 'ecs', resource: '*' }) },
        },
      }),
    });
    props.storage.grant(this.taskRole, props.storage.inputs, 'read');
    props.storage.grant(this.taskRole, props.storage.outputs, 'write');
    props.storage.grantWork(this.taskRole, 'read', 'write', 'list');
    const artifacts = Object.values(props.models).flatMap((m) => (m.modelDataUrl ? [m.modelDataUrl] : []));
    if (artifacts.length > 0) {
      this.taskRole.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: artifacts.map((u) => objectArn(u)) }),
      );
    }
    for (const key of new Set(
      Object.values(props.models).flatMap((m) => (m.modelDataKey ? [m.modelDataKey] : [])),
    ))
      key.grantDecrypt(this.taskRole);

    this.executionRole = new iam.Role(this, 'ExecutionRole', {
      description: 'ECS agent for batch transform tasks: pull images, write container logs',
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
    });

    this.sidecarImage = props.sidecarImage ?? repositoryImage(SIDECAR_DOCKERFILE);

    const definitions = new Map<
      string,
      { fargate: ecs.TaskDefinition; ec2: Map<string, ecs.TaskDefinition> }
    >();
    for (const [name, model] of Object.entries(props.models)) {
      const image = modelImage(this, name, model.image);
      const fargate = this.define(`${name}-fargate`, name, model, image, props.logGroup, {
        family: taskDefinitionFamily(this.familyPrefix, name),
        compatibility: ecs.Compatibility.FARGATE,
        cpu: FARGATE_REGISTERED_SIZE.cpu,
        memoryMiB: FARGATE_REGISTERED_SIZE.memoryMiB,
        gpus: 0,
        neuronDevices: 0,
      });
      const ec2 = new Map<string, ecs.TaskDefinition>();
      for (const mlType of props.ec2InstanceTypes) {
        const spec = ec2Spec(mlType);
        if (ec2.has(spec.ec2InstanceType)) continue;
        ec2.set(
          spec.ec2InstanceType,
          this.define(`${name}-${spec.ec2InstanceType}`, name, model, image, props.logGroup, {
            family: taskDefinitionFamily(this.familyPrefix, name, spec.ec2InstanceType),
            compatibility: ecs.Compatibility.EC2,
            cpu: spec.vcpus * 1024,
            // The catalog's rule, the same validation puts in the job's Capacity.
            memoryMiB: ec2TaskMemoryMiB(spec),
            gpus: spec.gpus,
            neuronDevices: spec.neuronDevices,
          }),
        );
      }
      definitions.set(name, { fargate, ec2 });
    }
    this.taskDefinitions = definitions;

    acknowledgeWildcards(this.executionRole, [
      {
        resource: '*',
        reason:
          'ecr:GetAuthorizationToken has no resource-level permissions; image pulls themselves are limited to the repositories used.',
      },
    ]);
  }

  private define(
    id: string,
    modelName: string,
    model: ModelProps,
    image: ecs.ContainerImage,
    logGroup: logs.ILogGroup,
    size: {
      family: string;
      compatibility: ecs.Compatibility;
      cpu: number;
      memoryMiB: number;
      gpus: number;
      neuronDevices: number;
    },
  ): ecs.TaskDefinition {
    const fargate = size.compatibility === ecs.Compatibility.FARGATE;
    const definition = new ecs.TaskDefinition(this, id, {
      family: size.family,
      compatibility: size.compatibility,
      networkMode: ecs.NetworkMode.AWS_VPC,
      cpu: String(size.cpu),
      memoryMiB: String(size.memoryMiB),
      taskRole: this.taskRole,
      executionRole: this.executionRole,
      ...(fargate
        ? {
            runtimePlatform: {
              cpuArchitecture: ecs.CpuArchitecture.X86_64,
              operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
            },
            ...(model.ephemeralStorageGiB ? { ephemeralStorageGiB: model.ephemeralStorageGiB } : {}),
          }
        : {}),
    });
    if (model.modelDataUrl) definition.addVolume({ name: 'model' });
    definition.addVolume({ name: 'scratch' });
    // awslogs names each stream `<prefix>/<container>/<task id>`: the model's name is the prefix.
    const logging = () => ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: modelName });
    const withInit = (cid: string) =>
      new ecs.LinuxParameters(this, `${id}-${cid}-linux`, { initProcessEnabled: true });

    let fetch: ecs.ContainerDefinition | undefined;
    if (model.modelDataUrl) {
      fetch = definition.addContainer(CONTAINERS.fetchModel, {
        containerName: CONTAINERS.fetchModel,
        image: this.sidecarImage,
        command: ['fetch-model'],
        essential: false,
        readonlyRootFilesystem: true,
        environment: {
          MODEL_DATA_URL: model.modelDataUrl,
          MODEL_DIR,
          MODEL_DATA_DOWNLOAD_TIMEOUT_SECONDS: String(
            model.modelDataDownloadTimeoutSeconds ?? MODEL_DATA_DOWNLOAD_TIMEOUT_S,
          ),
          AWS_REGION: Aws.REGION,
        },
        logging: logging(),
        linuxParameters: withInit('fetch'),
      });
      fetch.addMountPoints(
        { sourceVolume: 'model', containerPath: MODEL_DIR, readOnly: false },
        { sourceVolume: 'scratch', containerPath: '/tmp', readOnly: false },
      );
    }

    const modelLinux = withInit('model');
    for (let d = 0; d < size.neuronDevices; d++) {
      modelLinux.addDevices({
        hostPath: `/dev/neuron${d}`,
        containerPath: `/dev/neuron${d}`,
        permissions: [ecs.DevicePermission.READ, ecs.DevicePermission.WRITE],
      });
    }
    const container = definition.addContainer(CONTAINERS.model, {
      containerName: CONTAINERS.model,
      image,
      command: ['serve'],
      essential: false,
      portMappings: [{ containerPort: MODEL_PORT }],
      environment: { ...model.environment },
      logging: logging(),
      linuxParameters: modelLinux,
      stopTimeout: Duration.seconds(30),
      ...(size.gpus > 0 ? { gpuCount: size.gpus } : {}),
    });
    if (fetch) {
      // Only with artifacts: an image may carry its model at /opt/ml/model, which a volume would hide.
      container.addMountPoints({ sourceVolume: 'model', containerPath: MODEL_DIR, readOnly: false });
      container.addContainerDependencies({
        container: fetch,
        condition: ecs.ContainerDependencyCondition.SUCCESS,
      });
    }

    const sidecar = definition.addContainer(CONTAINERS.sidecar, {
      containerName: CONTAINERS.sidecar,
      image: this.sidecarImage,
      essential: true,
      readonlyRootFilesystem: true,
      cpu: SIDECAR_SHARE.cpu,
      memoryReservationMiB: SIDECAR_SHARE.memoryMiB,
      // JOB_URI, PLAN_URI and PARTITION_INDEX come from the RunTask overrides of each partition.
      // MODEL_CONTAINER: whose exit the sidecar reads from the task metadata while it waits for /ping.
      environment: {
        MODEL_URL: `http://127.0.0.1:${MODEL_PORT}`,
        MODEL_CONTAINER: CONTAINERS.model,
        METRICS: 'emf',
        AWS_REGION: Aws.REGION,
      },
      logging: logging(),
      linuxParameters: withInit('sidecar'),
      // Time to abort open multipart uploads and write a final progress report after SIGTERM.
      stopTimeout: Duration.seconds(60),
    });
    sidecar.addMountPoints({ sourceVolume: 'scratch', containerPath: '/tmp', readOnly: false });
    if (fetch) {
      // The model's start-up budget begins once its artifacts are in place; a failed fetch-model
      // stops the task at once (the sidecar never starts) instead of costing that whole budget.
      sidecar.addContainerDependencies({
        container: fetch,
        condition: ecs.ContainerDependencyCondition.SUCCESS,
      });
    }

    acknowledge(
      definition,
      'AwsSolutions-ECS2',
      'The environment holds no secrets: the model declared in the deployment (its settings), the model server address and the region. Job-specific values arrive as RunTask overrides.',
    );
    return definition;
  }
}

function checkModel(name: string, model: ModelProps): void {
  const where = `models["${name}"]`;
  if (!MODEL_NAME.test(name) || name.length > 63) {
    throw new Error(
      `${where}: a ModelName is 1–63 letters, digits and hyphens, starting and ending with a letter or digit`,
    );
  }
  if (model.modelDataUrl) {
    const loc = parseLocation(model.modelDataUrl, { allowFile: false });
    if (loc.scheme !== 's3' || !loc.key)
      throw new Error(`${where}.modelDataUrl must be s3://bucket/key; got ${model.modelDataUrl}`);
  }
  for (const key of Object.keys(model.environment ?? {})) {
    if (!ENVIRONMENT_KEY.test(key))
      throw new Error(`${where}.environment: "${key}" is not a valid variable name`);
  }
  const download = model.modelDataDownloadTimeoutSeconds;
  if (download !== undefined && (!Number.isInteger(download) || download < 1 || download > 3600)) {
    throw new Error(
      `${where}.modelDataDownloadTimeoutSeconds must be a whole number from 1 to 3600; got ${download}`,
    );
  }
  const storage = model.ephemeralStorageGiB;
  if (storage !== undefined && (!Number.isInteger(storage) || storage < 21 || storage > 200)) {
    throw new Error(
      `${where}.ephemeralStorageGiB must be a whole number from 21 to 200 (Fargate's range); got ${storage}`,
    );
  }
}

const ECR_URI =
  /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/([^:@]+)(?::([^@]+))?(?:@(.+))?$/;

function modelImage(scope: Construct, name: string, image: ecs.ContainerImage | string): ecs.ContainerImage {
  if (typeof image !== 'string') return image;
  const dir = isAbsolute(image) ? image : join(process.cwd(), image);
  if (existsSync(dir) && statSync(dir).isDirectory()) {
    return ecs.ContainerImage.fromAsset(dir, { platform: Platform.LINUX_AMD64 });
  }
  const ecrMatch = ECR_URI.exec(image);
  if (ecrMatch) {
    const [, account, region, repository, tag, digest] = ecrMatch;
    const repo = ecr.Repository.fromRepositoryAttributes(scope, `${name}-repository`, {
      repositoryArn: `arn:${Aws.PARTITION}:ecr:${region}:${account}:repository/${repository}`,
      repositoryName: repository!,
    });
    // fromEcrRepository grants the execution role pull access to exactly this repository.
    return ecs.ContainerImage.fromEcrRepository(repo, digest ?? tag ?? 'latest');
  }
  return ecs.ContainerImage.fromRegistry(image);
}

function objectArn(uri: string): string {
  const loc = parseLocation(uri, { allowFile: false });
  if (loc.scheme !== 's3') throw new Error(`expected an s3:// URI; got ${uri}`);
  return `arn:${Aws.PARTITION}:s3:::${loc.bucket}/${loc.key}`;
}
