import { S3Client } from '@aws-sdk/client-s3';
import {
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  StartExecutionCommand,
  type StartExecutionCommandOutput,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { INSTANCE_CATALOG } from '../job/instances';
import { JobValidationError } from '../job/problems';
import type { TransformJobRequest } from '../job/schema';
import { checkRequest } from '../job/validate';
import { Storages } from '../storage/index';
import { S3Storage, s3ClientConfigFromEnv } from '../storage/s3';
import type { Storage } from '../storage/storage';
import {
  type AwsClients,
  awsErrorName,
  awsFailure,
  BatchTransformError,
  type CommandSender,
  createCloudFormationClient,
  createSfnClient,
  sdkConfig,
} from './aws';
import { type DescribeCache, describeJob, type JobDescription } from './describe';
import { type Deployment, executionArnOf, resolveDeployment } from './deployment';
import { type ListJobsFilters, type ListJobsResult, listJobs } from './list';
import { isTerminal } from './status';
import { DEFAULT_POLL_INTERVAL_MS } from './defaults';

export interface TransformerOptions {
  /** The state machine to run jobs on. @default the StateMachineArn output of the stack */
  readonly stateMachineArn?: string;
  /**
   * The CloudFormation stack whose StateMachineArn output names the state machine.
   * @default BATCH_TRANSFORM_STATE_MACHINE_ARN when set, else the stack 'BatchTransform'
   */
  readonly stackName?: string;
  /** @default the SDK's (AWS_REGION, the profile's); Step Functions calls go to the state machine's region */
  readonly region?: string;
  /** A profile of ~/.aws/config. @default the SDK's (AWS_PROFILE) */
  readonly profile?: string;
  /** SDK clients to use instead of building them (tests pass fakes). */
  readonly clients?: AwsClients;
  /** Where live progress is read from. @default S3 (in the state machine's region) and file:// */
  readonly storage?: Storage;
  /** @default process.env */
  readonly env?: NodeJS.ProcessEnv;
}

export interface WaitOptions {
  /** Time between polls. @default 10 000 */
  readonly pollIntervalMs?: number;
  /** Called with every description, the final one included. */
  readonly onUpdate?: (description: JobDescription) => void;
  /** Stops waiting (not the job): wait() rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/**
 * Runs transform jobs on a deployed stack, shaped like the SageMaker Python SDK's Transformer:
 *
 *   const t = new Transformer({ stackName: 'BatchTransform', region: 'eu-west-1' });
 *   const job = await t.transform(request); // a CreateTransformJob request
 *   const done = await job.wait();          // DescribeTransformJob-shaped, with Progress
 *
 * Nothing is called until the first method needs it; the state machine is looked up once.
 */
export class Transformer {
  readonly #options: TransformerOptions;
  #deployment: Promise<Deployment> | undefined;
  #sfn: CommandSender | undefined;
  #cloudFormation: CommandSender | undefined;
  #storage: Storage | undefined;
  /** The state machine's region, once known: the work location's bucket is in it. */
  #region: string | undefined;
  readonly #owned: Array<{ destroy(): void }> = [];

  constructor(options: TransformerOptions = {}) {
    this.#options = options;
  }

  /** The state machine this transformer uses, and where its ARN came from. */
  deployment(): Promise<Deployment> {
    if (!this.#deployment) {
      const o = this.#options;
      this.#deployment = resolveDeployment(
        {
          ...(o.stateMachineArn ? { stateMachineArn: o.stateMachineArn } : {}),
          ...(o.stackName ? { stackName: o.stackName } : {}),
          ...(o.region ? { region: o.region } : {}),
          ...(o.env ? { env: o.env } : {}),
        },
        () => this.#cloudFormationClient(),
      );
      // A failed lookup is not remembered: the next call tries again.
      this.#deployment.then(
        (d) => {
          this.#region = d.region;
        },
        () => {
          this.#deployment = undefined;
        },
      );
    }
    return this.#deployment;
  }

  /**
   * Starts a job: validates the request here first (JobValidationError with every problem), then
   * starts an execution named after the TransformJobName with the request as its input.
   */
  async transform(request: TransformJobRequest): Promise<TransformJob> {
    const checked = checkRequest(request, { enabledInstanceTypes: Object.keys(INSTANCE_CATALOG) });
    const name = (request as { TransformJobName?: unknown } | null)?.TransformJobName;
    if (!checked.ok)
      throw new JobValidationError(checked.problems, typeof name === 'string' ? name : undefined);
    const jobName = checked.job.TransformJobName;
    const { stateMachineArn } = await this.deployment();
    const sfn = await this.#sfnClient();
    let started: StartExecutionCommandOutput;
    try {
      started = await sfn.send(
        new StartExecutionCommand({ stateMachineArn, name: jobName, input: JSON.stringify(request) }),
      );
    } catch (e) {
      if (awsErrorName(e) === 'ExecutionAlreadyExists') {
        throw new BatchTransformError(
          'AlreadyExists',
          `a job named "${jobName}" already exists; job names are unique, so give this one another TransformJobName`,
          { cause: e },
        );
      }
      throw awsFailure(e, `starting transform job "${jobName}"`);
    }
    return new TransformJob(this, jobName, started.executionArn ?? executionArnOf(stateMachineArn, jobName));
  }

  /** A job started before, by its name (the SDK's `Transformer.attach`). */
  async attach(jobName: string): Promise<TransformJob> {
    const { stateMachineArn } = await this.deployment();
    return new TransformJob(this, jobName, executionArnOf(stateMachineArn, jobName));
  }

  async describe(jobName: string): Promise<JobDescription> {
    return (await this.attach(jobName)).describe();
  }

  async stop(jobName: string): Promise<JobDescription> {
    return (await this.attach(jobName)).stop();
  }

  /** ListTransformJobs: filters, sort and MaxResults as SageMaker's. */
  async list(filters: ListJobsFilters = {}): Promise<ListJobsResult> {
    const { stateMachineArn } = await this.deployment();
    return listJobs(await this.#sfnClient(), stateMachineArn, filters);
  }

  /** Releases the sockets of the SDK clients this transformer built. */
  close(): void {
    for (const c of this.#owned.splice(0)) c.destroy();
  }

  /** @internal the Step Functions client, in the state machine's region. */
  async sfnClient(): Promise<CommandSender> {
    return this.#sfnClient();
  }

  /** @internal the storage live progress is read from. */
  storage(): Storage {
    if (this.#options.storage) return this.#options.storage;
    if (!this.#storage) {
      // The work location is in the stack's region; the profile applies to S3 as to the rest.
      const region = this.#region ?? this.#options.region;
      const client = new S3Client({
        ...s3ClientConfigFromEnv(this.#options.env),
        ...sdkConfig({ profile: this.#options.profile, region }),
      });
      this.#owned.push(client);
      this.#storage = new Storages({ s3: new S3Storage({ client }) });
    }
    return this.#storage;
  }

  async #sfnClient(): Promise<CommandSender> {
    if (this.#options.clients?.sfn) return this.#options.clients.sfn;
    if (!this.#sfn) {
      const { region } = await this.deployment();
      const client = createSfnClient({
        region,
        ...(this.#options.profile ? { profile: this.#options.profile } : {}),
      });
      this.#owned.push(client);
      this.#sfn = client;
    }
    return this.#sfn;
  }

  #cloudFormationClient(): CommandSender {
    if (this.#options.clients?.cloudFormation) return this.#options.clients.cloudFormation;
    if (!this.#cloudFormation) {
      const client = createCloudFormationClient(this.#options);
      this.#owned.push(client);
      this.#cloudFormation = client;
    }
    return this.#cloudFormation;
  }
}

/** One job on the deployed stack (the SDK's transformer after `transform()`, or `attach()`). */
export class TransformJob {
  readonly #transformer: Transformer;
  readonly #cache: DescribeCache = {};

  constructor(
    transformer: Transformer,
    readonly name: string,
    readonly executionArn: string,
  ) {
    this.#transformer = transformer;
  }

  /** DescribeTransformJob, with Progress (live while the job runs, best effort). */
  async describe(): Promise<JobDescription> {
    const sfn = await this.#transformer.sfnClient();
    return describeJob(sfn, () => this.#transformer.storage(), this.executionArn, this.name, this.#cache);
  }

  /**
   * Polls until the job is Completed, Failed or Stopped and resolves with the final description,
   * whatever the status (check TransformJobStatus; unlike the Python SDK it does not throw for Failed).
   */
  async wait(options: WaitOptions = {}): Promise<JobDescription> {
    const interval = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    for (;;) {
      options.signal?.throwIfAborted();
      const d = await this.describe();
      options.onUpdate?.(d);
      if (isTerminal(d.TransformJobStatus)) return d;
      await sleep(interval, options.signal);
    }
  }

  /**
   * StopExecution. Step Functions ends the execution at once and asks ECS to stop its tasks; the
   * job is Stopping until the stack's cleanup rule has stopped any task left, aborted the job's
   * uploads, removed its outputs (unless Extensions.KeepOutputsOnStop) and written its summary, then
   * Stopped. A job that already ended cannot be stopped (as in SageMaker).
   */
  async stop(): Promise<JobDescription> {
    const sfn = await this.#transformer.sfnClient();
    let exec: DescribeExecutionCommandOutput;
    try {
      exec = await sfn.send(new DescribeExecutionCommand({ executionArn: this.executionArn }));
    } catch (e) {
      if (awsErrorName(e) === 'ExecutionDoesNotExist') return this.describe(); // says NotFound clearly
      throw awsFailure(e, `stopping transform job "${this.name}"`);
    }
    if (exec.status !== 'RUNNING' && exec.status !== 'PENDING_REDRIVE') {
      const now = await this.describe();
      throw new BatchTransformError(
        'NotInProgress',
        `transform job "${this.name}" is ${now.TransformJobStatus}, not InProgress: only a job in progress can be stopped`,
      );
    }
    try {
      await sfn.send(new StopExecutionCommand({ executionArn: this.executionArn }));
    } catch (e) {
      throw awsFailure(e, `stopping transform job "${this.name}"`);
    }
    return this.describe();
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
