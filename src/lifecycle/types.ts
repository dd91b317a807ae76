import type { Capacity } from '../job/normalized';

/**
 * What the state machine carries between states. Small on purpose: Step Functions caps a state's
 * payload at 256 KB, so the normalized job and the plan live in the work location and the state
 * holds references to them.
 */
export interface JobRef {
  readonly jobName: string;
  /** `<work>/job.json`: the normalized job. */
  readonly jobUri: string;
  /** The job's work location, ends with `/`. */
  readonly workUri: string;
  readonly outputUri: string;
  readonly modelName: string;
  readonly instanceType: string;
  readonly instanceCount: number;
  readonly capacity: Capacity;
  /** The model container's environment: model's own, then the job's Environment over it. */
  readonly modelEnvironment: ReadonlyArray<{ readonly Name: string; readonly Value: string }>;
  readonly creationTime: string;
}

export interface PlanRef {
  readonly planUri: string;
  /** One entry per partition, for the Map state's ItemsPath: `{ index }`. */
  readonly partitions: ReadonlyArray<{ readonly index: number }>;
  readonly objectCount: number;
  readonly shardedObjectCount: number;
  readonly totalBytes: number;
}

/** Input of the validate stage: the execution input plus what the state machine knows. */
export interface ValidateEvent {
  readonly request: unknown;
  readonly executionName?: string;
  /** ISO time a schedule fired, for `{{ScheduledTime...}}` placeholders in S3 URIs. */
  readonly scheduledTime?: string;
}

export type TerminalStatus = 'Completed' | 'Failed' | 'Stopped';

/** A model a deployment knows: what a ModelName resolves to. */
export interface ModelSpec {
  /** Container image (registry URI) for deployed runs; unused locally. */
  readonly image?: string;
  /** `s3://…/model.tar.gz` fetched and extracted to /opt/ml/model before the model starts. */
  readonly modelDataUrl?: string;
  readonly environment?: Readonly<Record<string, string>>;
}

/** What validation needs to know about the deployment it runs in. */
export interface DeploymentContext {
  readonly models: Readonly<Record<string, ModelSpec>>;
  /** ml.* types backed by EC2 capacity in this deployment (Fargate-sized types are always available). */
  readonly enabledInstanceTypes: readonly string[];
  /** Upper bound of TransformResources.InstanceCount. @default 100 (SageMaker's cap) */
  readonly maxInstanceCount: number;
  /** Where jobs' work locations are created: `<workRoot>/<jobName>/`. */
  readonly workRoot: string;
  /** Local runs accept file:// locations and run every instance type locally. */
  readonly local: boolean;
}

/** Stops the ECS tasks of a job (cleanup of a stopped execution). One small interface so tests can stand in for ECS. */
export interface TaskControl {
  stopJobTasks(jobName: string, reason: string): Promise<number>;
}

export interface CleanupTarget {
  readonly jobName: string;
  readonly workUri: string;
  readonly outputUri: string;
}

export interface CleanupReport {
  readonly abortedUploads: number;
  readonly deletedScratchObjects: number;
  readonly stoppedTasks: number;
}
