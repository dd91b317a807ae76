import { existsSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { Aws, Names, Stack } from 'aws-cdk-lib';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import {
  type CreatedModelLaunch,
  type CreatedModelPolicy,
  taskDefinitionFamily,
} from '../src/contract/deployment';
import { defaultCreatedModelImages, ecrRepositoryOfPattern } from '../src/deploy/model-images';
import {
  CONTAINERS,
  FARGATE_REGISTERED_SIZE,
  type TaskDefinitionLayout,
  type TaskPlatform,
  type TaskSize,
  taskDefinitionLayout,
} from '../src/deploy/task-layout';
import { ec2TaskMemoryMiB } from '../src/job/instances';
import { ENVIRONMENT_KEY, MODEL_NAME } from '../src/job/schema';
import { parseLocation } from '../src/storage/uri';
import { ec2Spec } from './compute';
import { acknowledge, acknowledgeWildcards } from './nag';
import { repositoryImage } from './images';
import { createdModelsRoot } from '../src/contract/layout';
import type { DataLocation, TransformStorage } from './storage';

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

export { CONTAINERS };

/** The sidecar image (also the fetch-model init container), built with the repository root as context. */
export const SIDECAR_DOCKERFILE = 'containers/sidecar/Dockerfile';

export interface ModelTasksProps {
  readonly models: Readonly<Record<string, ModelProps>>;
  /** ml.* types with EC2 capacity: each model gets a task definition sized for each. */
  readonly ec2InstanceTypes: readonly string[];
  readonly storage: TransformStorage;
  readonly logGroup: logs.ILogGroup;
  /** The sidecar image. @default built from containers/sidecar/Dockerfile */
  readonly sidecarImage?: ecs.ContainerImage;
  /**
   * Image URIs a model made with CreateModel may use; `*` matches any run of characters (not `/`
   * in the registry's host name). Pull access is granted to the ECR repositories they name.
   * @default - ECR repositories of the stack's account, in any region
   */
  readonly createdModelImages?: readonly string[];
}

/** ECR's image pull actions (GetAuthorizationToken has no resource and is granted apart). */
const ECR_PULL_ACTIONS = [
  'ecr:BatchCheckLayerAvailability',
  'ecr:GetDownloadUrlForLayer',
  'ecr:BatchGetImage',
];

/**
 * Task definitions: for every model, one for Fargate and one per enabled EC2 instance type, each
 * laid out by src/deploy/task-layout.ts (fetch-model, model, sidecar), the builder Validate also
 * registers a created model's task definition with. Models made with CreateModel at run time get
 * their families under `createdModelLaunch.familyPrefix`, which `grantCreatedModels` scopes IAM to.
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
  /** Which images models made with CreateModel may use (Validate's view). */
  readonly createdModels: CreatedModelPolicy;
  /** `s3://<work bucket>/models/`: where models made with CreateModel are kept (the ModelsRoot output). */
  readonly createdModelsRoot: string;
  /** How Validate registers a created model's task definitions (same layout as the declared ones). */
  readonly createdModelLaunch: CreatedModelLaunch;
  private readonly createdModelsLocation: DataLocation;
  private readonly storage: TransformStorage;
  /** The sidecar's image URI, as the first task definition bound it. */
  private sidecarImageName?: string;
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
      const fargate = this.define(
        `${name}-fargate`,
        name,
        model,
        image,
        props.logGroup,
        taskDefinitionFamily(this.familyPrefix, name),
        {
          compatibility: 'FARGATE',
        },
      );
      const ec2 = new Map<string, ecs.TaskDefinition>();
      for (const mlType of props.ec2InstanceTypes) {
        const spec = ec2Spec(mlType);
        if (ec2.has(spec.ec2InstanceType)) continue;
        ec2.set(
          spec.ec2InstanceType,
          this.define(
            `${name}-${spec.ec2InstanceType}`,
            name,
            model,
            image,
            props.logGroup,
            taskDefinitionFamily(this.familyPrefix, name, spec.ec2InstanceType),
            {
              compatibility: 'EC2',
              cpu: spec.vcpus * 1024,
              // The catalog's rule, the same validation puts in the job's Capacity.
              memoryMiB: ec2TaskMemoryMiB(spec),
              gpus: spec.gpus,
              neuronDevices: spec.neuronDevices,
            },
          ),
        );
      }
      definitions.set(name, { fargate, ec2 });
    }
    this.taskDefinitions = definitions;

    this.storage = props.storage;
    // Beside the jobs' work root and outside what expires: where Validate looks (createdModelsRoot).
    this.createdModelsRoot = createdModelsRoot(props.storage.workRoot);
    const prefix = /^s3:\/\/[^/]+\/(.*)$/.exec(this.createdModelsRoot)?.[1];
    if (prefix === undefined) throw new Error(`cannot place created models beside ${props.storage.workRoot}`);
    this.createdModelsLocation = { bucket: props.storage.workBucket, prefix };
    this.createdModels = {
      images: [...(props.createdModelImages ?? defaultCreatedModelImages(Aws.ACCOUNT_ID))],
    };
    this.createdModelLaunch = {
      // Fixed at synthesis, unique per stack and path: the IAM scope of the families Validate registers.
      // `-created-`, where the declared families continue with `_`: the two sets never overlap.
      familyPrefix: `${this.familyPrefix}-created-`,
      platform: this.platform(this.sidecarImageName!, props.logGroup),
    };
    this.grantCreatedModelPulls(props.createdModelImages);

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
    family: string,
    size: TaskSize,
  ): ecs.TaskDefinition {
    const fargate = size.compatibility === 'FARGATE';
    const definition = new ecs.TaskDefinition(this, id, {
      family,
      compatibility: fargate ? ecs.Compatibility.FARGATE : ecs.Compatibility.EC2,
      networkMode: ecs.NetworkMode.AWS_VPC,
      cpu: String(fargate ? FARGATE_REGISTERED_SIZE.cpu : size.cpu),
      memoryMiB: String(fargate ? FARGATE_REGISTERED_SIZE.memoryMiB : size.memoryMiB),
      taskRole: this.taskRole,
      executionRole: this.executionRole,
    });
    // The containers are added here only for what binding them grants (image pulls, log writes) and
    // for their image names; the definition itself is the shared layout's (src/deploy/task-layout.ts),
    // the one a created model's task definition is registered from at run time.
    const logging = ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: modelName });
    const bind = (name: string, img: ecs.ContainerImage, essential: boolean) =>
      definition.addContainer(name, { containerName: name, image: img, essential, logging }).imageName;
    const modelImage = bind(CONTAINERS.model, image, false);
    const sidecarImage = bind(CONTAINERS.sidecar, this.sidecarImage, true);
    this.sidecarImageName ??= sidecarImage;
    const layout = taskDefinitionLayout(
      definition.family,
      {
        name: modelName,
        image: modelImage,
        ...(model.modelDataUrl ? { modelDataUrl: model.modelDataUrl } : {}),
        ...(model.environment ? { environment: model.environment } : {}),
        ...(model.modelDataDownloadTimeoutSeconds
          ? { modelDataDownloadTimeoutSeconds: model.modelDataDownloadTimeoutSeconds }
          : {}),
        ...(model.ephemeralStorageGiB ? { ephemeralStorageGiB: model.ephemeralStorageGiB } : {}),
      },
      size,
      this.platform(sidecarImage, logGroup),
    );
    applyLayout(definition, layout);

    acknowledge(
      definition,
      'AwsSolutions-ECS2',
      'The environment holds no secrets: the model declared in the deployment (its settings), the model server address and the region. Job-specific values arrive as RunTask overrides.',
    );
    return definition;
  }

  /**
   * What Validate needs to run created models: read them (`reader`), register their task definitions
   * under the family prefix and pass the task roles to ECS (`registrar`), and what the state machine
   * needs to run those families (`runner`).
   */
  grantCreatedModels(o: {
    reader: iam.IRole;
    registrar: iam.IRole;
    runner: iam.IRole;
    clusterArn: string;
  }): void {
    const stack = Stack.of(this);
    const families = stack.formatArn({
      service: 'ecs',
      resource: 'task-definition',
      resourceName: `${this.createdModelLaunch.familyPrefix}*`,
    });
    this.storage.grant(o.reader, [this.createdModelsLocation], 'read');
    o.registrar.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['ecs:RegisterTaskDefinition'], resources: [families] }),
    );
    // DescribeTaskDefinition has no resource-level permissions: it finds a family registered before.
    o.registrar.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['ecs:DescribeTaskDefinition'], resources: ['*'] }),
    );
    o.registrar.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['iam:PassRole'],
        resources: [this.taskRole.roleArn, this.executionRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
      }),
    );
    o.runner.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['ecs:RunTask'],
        resources: [families],
        conditions: { ArnEquals: { 'ecs:cluster': o.clusterArn } },
      }),
    );
    acknowledgeWildcards(o.registrar, [
      {
        resource: '*',
        reason: 'ecs:DescribeTaskDefinition has no resource-level permissions; it only reads definitions.',
      },
      {
        resource: families,
        reason:
          "A created model's task definition family is `<prefix><hash of its layout>`, only known when a job uses the model; the prefix is this deployment's own.",
      },
    ]);
    acknowledgeWildcards(o.runner, [
      {
        resource: families,
        reason:
          "Task definitions of created models are registered at run time under this deployment's family prefix; RunTask is limited to this cluster.",
      },
    ]);
  }

  /** The execution role pulls created models' images: the ECR repositories the patterns name. */
  private grantCreatedModelPulls(patterns: readonly string[] | undefined): void {
    const stack = Stack.of(this);
    const repositories = (patterns ?? [`${Aws.ACCOUNT_ID}.dkr.ecr.*.amazonaws.com/*`]).flatMap((p) => {
      if (patterns === undefined)
        return [stack.formatArn({ service: 'ecr', region: '*', resource: 'repository', resourceName: '*' })];
      const ecrRepo = ecrRepositoryOfPattern(p);
      return ecrRepo
        ? [`arn:${Aws.PARTITION}:ecr:${ecrRepo.region}:${ecrRepo.account}:repository/${ecrRepo.repository}`]
        : [];
    });
    if (repositories.length === 0) return;
    this.executionRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ECR_PULL_ACTIONS, resources: repositories }),
    );
    this.executionRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['ecr:GetAuthorizationToken'], resources: ['*'] }),
    );
    acknowledgeWildcards(
      this.executionRole,
      repositories
        .filter((r) => r.includes('*'))
        .map((r) => ({
          resource: r,
          reason:
            'Created models may use the images of these ECR repositories (the createdModelImages patterns): which one is chosen at run time by CreateModel.',
        })),
    );
  }

  private platform(sidecarImage: string, logGroup: logs.ILogGroup): TaskPlatform {
    return {
      sidecarImage,
      taskRoleArn: this.taskRole.roleArn,
      executionRoleArn: this.executionRole.roleArn,
      logGroup: logGroup.logGroupName,
      region: Aws.REGION,
    };
  }
}

/**
 * Sets the synthesized task definition's properties to the layout's. The L1 properties take ECS's
 * own (camelCase) member names, so the layout goes in as it is, and cdk-nag checks what is deployed.
 */
function applyLayout(definition: ecs.TaskDefinition, layout: TaskDefinitionLayout): void {
  const cfn = definition.node.defaultChild as ecs.CfnTaskDefinition;
  cfn.family = layout.family;
  cfn.taskRoleArn = layout.taskRoleArn;
  cfn.executionRoleArn = layout.executionRoleArn;
  cfn.networkMode = layout.networkMode;
  cfn.requiresCompatibilities = [...layout.requiresCompatibilities];
  cfn.cpu = layout.cpu;
  cfn.memory = layout.memory;
  cfn.runtimePlatform = layout.runtimePlatform;
  cfn.ephemeralStorage = layout.ephemeralStorage;
  cfn.volumes = layout.volumes as ecs.CfnTaskDefinition.VolumeProperty[];
  cfn.containerDefinitions =
    layout.containerDefinitions as ecs.CfnTaskDefinition.ContainerDefinitionProperty[];
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
