import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { DeploymentConfig } from '../src/contract/deployment';
import { LIMITS } from '../src/job/schema';
import { TransformCompute } from './compute';
import { TransformLifecycle } from './lifecycle';
import { type ModelProps, ModelTasks } from './models';
import { TransformMonitoring } from './observability';
import { type JobScheduleProps, TransformSchedules } from './schedules';
import { type DataLocation, TransformStorage } from './storage';

export type { DataLocation } from './storage';
export type { ModelProps } from './models';
export type { JobScheduleProps } from './schedules';

export interface BatchTransformProps {
  /** The models jobs may name: ModelName → container image, optional ModelDataUrl and environment. */
  readonly models: Readonly<Record<string, ModelProps>>;
  /**
   * ml.* instance types that run on EC2 capacity (GPU, Neuron, and CPU sizes Fargate cannot match),
   * one Auto Scaling capacity provider each, scaled from zero. Fargate-sized types need no entry.
   * @default [] (CPU types that fit Fargate only)
   */
  readonly ec2InstanceTypes?: readonly string[];
  /** Upper bound of a job's InstanceCount, and of each EC2 capacity provider's instances. @default 100 (SageMaker's cap) */
  readonly maxInstanceCount?: number;
  /** VPC for the tasks. @default a new VPC: public subnets in two AZs, no NAT gateway, an S3 gateway endpoint */
  readonly vpc?: ec2.IVpc;
  /** Subnets of the tasks and instances. @default public subnets of a new VPC; private-with-egress (else public) ones of an imported VPC */
  readonly subnets?: ec2.SubnetSelection;
  /** Bucket behind the default input and output locations. @default a new bucket */
  readonly dataBucket?: s3.IBucket;
  /** Where jobs may read inputs, manifests and nothing else. @default the data bucket under `input/` */
  readonly inputLocations?: readonly DataLocation[];
  /** Where jobs may write outputs. @default the data bucket under `output/` */
  readonly outputLocations?: readonly DataLocation[];
  /** KMS key for the buckets the construct creates (and granted to every stage and task). @default SSE-S3 */
  readonly encryptionKey?: kms.IKey;
  /**
   * Customer-managed KMS keys jobs may name in `TransformOutput.KmsKeyId`: the tasks, Assemble and
   * FinalizeFailure may encrypt outputs with them. (Keys of imported buckets go with the location,
   * `DataLocation.encryptionKey`, and the model, `ModelProps.modelDataKey`.) @default []
   */
  readonly outputKmsKeys?: readonly kms.IKey[];
  /** Days after which S3 removes the parts of an upload nobody completed or aborted. @default 1 */
  readonly abortIncompleteMultipartUploadAfterDays?: number;
  /** Days a job's work location (plan, progress, summary) is kept. @default 30 */
  readonly workExpiryDays?: number;
  /** Jobs started on a schedule: schedule name → expression, time zone and job template. @default {} */
  readonly schedules?: Readonly<Record<string, JobScheduleProps>>;
  /** Retention of every log group (Lambdas, executions, containers). @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Longest one partition's task may run before it is stopped and retried. @default Duration.hours(24) */
  readonly partitionTimeout?: Duration;
  /** Root volume of EC2 instances (images, artifacts). @default 200 */
  readonly ec2RootVolumeGiB?: number;
  /** X-Ray tracing of executions. @default false */
  readonly tracing?: boolean;
  /** SNS topic notified by the failed-executions alarm. @default none */
  readonly alarmTopic?: sns.ITopic;
  /**
   * The sidecar image (also run as the fetch-model init container), e.g. a published release pulled
   * from a registry, so deploying needs no Docker. @default built from containers/sidecar/Dockerfile of this repository
   */
  readonly sidecarImage?: ecs.ContainerImage;
  /**
   * Image URIs a model made with CreateModel (`batch-transform api` on this stack) may use; `*`
   * matches any run of characters (not `/` in the registry's host name), e.g.
   * `123456789012.dkr.ecr.eu-west-1.amazonaws.com/models/*`. Pull access is granted to the ECR
   * repositories they name. `[]` allows no created models.
   * @default - ECR repositories of the stack's account, in any region
   */
  readonly createdModelImages?: readonly string[];
  /** Removal policy of the buckets the construct creates. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/** Lambda caps a function's whole environment at 4 KB; keep room for NODE_OPTIONS and the runtime's own. */
const LAMBDA_ENVIRONMENT_BUDGET = 3800;
/** What one CloudFormation reference (an ARN, a name, an id) is counted as when the size is estimated. */
const TOKEN_ESTIMATE = 'x'.repeat(120);
/** A pseudo parameter (region, account, partition, URL suffix) is short: at most 20 characters. */
const PSEUDO_TOKEN = /\$\{Token\[AWS\.(?:Region|AccountId|Partition|URLSuffix)\.\d+\]\}/g;
const PSEUDO_TOKEN_ESTIMATE = 'x'.repeat(20);

/**
 * SageMaker Batch Transform in your own account: a job lifecycle (Step Functions) that validates a
 * CreateTransformJob request, plans its input into partitions, runs one ECS task (model container +
 * sidecar) per partition on Fargate or on EC2 capacity that scales from zero, assembles and
 * finalizes, and cleans up on every path. Nothing runs between jobs.
 */
export class BatchTransform extends Construct {
  readonly storage: TransformStorage;
  readonly compute: TransformCompute;
  readonly modelTasks: ModelTasks;
  readonly lifecycle: TransformLifecycle;
  readonly monitoring: TransformMonitoring;
  readonly schedules: TransformSchedules;
  /** The state machine to start jobs with (execution name = TransformJobName, input = the request). */
  readonly stateMachine: sfn.StateMachine;

  constructor(scope: Construct, id: string, props: BatchTransformProps) {
    super(scope, id);
    const maxInstanceCount = props.maxInstanceCount ?? LIMITS.instanceCountMax;
    if (!Number.isInteger(maxInstanceCount) || maxInstanceCount < 1) {
      throw new Error(`maxInstanceCount must be a whole number ≥ 1; got ${maxInstanceCount}`);
    }
    const ec2InstanceTypes = [...new Set(props.ec2InstanceTypes ?? [])];
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    this.storage = new TransformStorage(this, 'Storage', {
      ...(props.dataBucket ? { dataBucket: props.dataBucket } : {}),
      ...(props.inputLocations ? { inputLocations: props.inputLocations } : {}),
      ...(props.outputLocations ? { outputLocations: props.outputLocations } : {}),
      ...(props.encryptionKey ? { encryptionKey: props.encryptionKey } : {}),
      ...(props.outputKmsKeys ? { outputKmsKeys: props.outputKmsKeys } : {}),
      workExpiryDays: props.workExpiryDays ?? 30,
      abortIncompleteMultipartUploadAfterDays: props.abortIncompleteMultipartUploadAfterDays ?? 1,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });

    const taskLogs = new logs.LogGroup(this, 'TaskLogs', {
      retention: logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.compute = new TransformCompute(this, 'Compute', {
      ...(props.vpc ? { vpc: props.vpc } : {}),
      ...(props.subnets ? { subnets: props.subnets } : {}),
      ec2InstanceTypes,
      maxInstancesPerType: maxInstanceCount,
      ec2RootVolumeGiB: props.ec2RootVolumeGiB ?? 200,
      flowLogBucket: this.storage.accessLogs,
      logGroups: [taskLogs],
    });

    this.modelTasks = new ModelTasks(this, 'Models', {
      models: props.models,
      ec2InstanceTypes,
      storage: this.storage,
      logGroup: taskLogs,
      ...(props.sidecarImage ? { sidecarImage: props.sidecarImage } : {}),
      ...(props.createdModelImages ? { createdModelImages: props.createdModelImages } : {}),
    });

    const deployment = this.deploymentConfig(props, ec2InstanceTypes, maxInstanceCount);
    this.lifecycle = new TransformLifecycle(this, 'Lifecycle', {
      storage: this.storage,
      compute: this.compute,
      models: this.modelTasks,
      deployment,
      logRetention,
      partitionTimeout: props.partitionTimeout ?? Duration.hours(24),
      tracing: props.tracing ?? false,
    });
    this.stateMachine = this.lifecycle.stateMachine;
    const validateRole = this.lifecycle.functions.validate.role;
    this.modelTasks.grantCreatedModels({
      reader: validateRole,
      registrar: validateRole,
      runner: this.stateMachine.role,
      clusterArn: this.compute.cluster.clusterArn,
    });

    this.schedules = new TransformSchedules(this, 'Schedules', {
      schedules: props.schedules ?? {},
      stateMachine: this.stateMachine,
      validation: {
        modelNames: Object.keys(props.models),
        enabledInstanceTypes: ec2InstanceTypes,
        maxInstanceCount,
      },
    });

    this.monitoring = new TransformMonitoring(this, 'Monitoring', {
      stateMachine: this.stateMachine,
      cluster: this.compute.cluster,
      ...(props.alarmTopic ? { alarmTopic: props.alarmTopic } : {}),
    });
  }

  /** `s3://…/jobs/`: a job's work location is `<workRoot><TransformJobName>/`. */
  get workRoot(): string {
    return this.storage.workRoot;
  }

  private deploymentConfig(
    props: BatchTransformProps,
    ec2InstanceTypes: readonly string[],
    maxInstanceCount: number,
  ): DeploymentConfig {
    const models = Object.fromEntries(
      Object.entries(props.models).map(([name, m]) => [
        name,
        m.environment ? { environment: { ...m.environment } } : {},
      ]),
    );
    const config: DeploymentConfig = {
      context: {
        models,
        enabledInstanceTypes: ec2InstanceTypes,
        maxInstanceCount,
        workRoot: this.storage.workRoot,
        jobNamesRoot: this.storage.jobNamesRoot,
        createdModels: this.modelTasks.createdModels,
      },
      launch: {
        fargateCapacityProvider: 'FARGATE',
        ec2CapacityProviders: Object.fromEntries(
          [...this.compute.ec2CapacityProviders].map(([type, cp]) => [type, cp.capacityProviderName]),
        ),
        taskDefinitionFamilyPrefix: this.modelTasks.familyPrefix,
        network: { fargate: this.compute.fargateNetwork, ec2: this.compute.ec2Network },
        createdModels: this.modelTasks.createdModelLaunch,
      },
    };
    const estimate = JSON.stringify(config)
      .replace(PSEUDO_TOKEN, PSEUDO_TOKEN_ESTIMATE)
      .replace(/\$\{Token\[[^\]]*\]\}/g, TOKEN_ESTIMATE).length;
    if (estimate > LAMBDA_ENVIRONMENT_BUDGET) {
      throw new Error(
        `The deployment description the validate Lambda needs is about ${estimate} bytes, over the ${LAMBDA_ENVIRONMENT_BUDGET} bytes a Lambda environment can hold ` +
          `(${Object.keys(props.models).length} models and their environments, ${ec2InstanceTypes.length} EC2 instance types). ` +
          'Split the models over two deployments, move large model settings into the image, or enable fewer EC2 instance types.',
      );
    }
    return config;
  }
}
