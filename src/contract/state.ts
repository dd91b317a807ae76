import type { Capacity } from './job';
import type { LaunchSpec } from './deployment';

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
  /** The request's Tags, applied to the job's ECS tasks (RunTask `Tags`); `[]` when none. */
  readonly tags: ReadonlyArray<{ readonly Key: string; readonly Value: string }>;
  readonly creationTime: string;
}

export interface PlanRef {
  readonly planUri: string;
  /** One entry per partition: `{ index }` (the local runner's list; the deployed Map reads the items file). */
  readonly partitions: ReadonlyArray<{ readonly index: number }>;
  /**
   * Key, in the work bucket, of the partition items (`<work>/partition-items.json`, the same
   * `{ index }` list) that the Distributed Map's ItemReader reads. Absent for file:// work locations.
   */
  readonly partitionItemsKey?: string;
  readonly objectCount: number;
  /** Of objectCount, those the job named by `Extensions.ResumeFrom` completed (no partition has them). */
  readonly completedEarlierCount?: number;
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

export interface CleanupTarget {
  readonly jobName: string;
  readonly workUri: string;
  readonly outputUri: string;
}

export interface CleanupReport {
  readonly abortedUploads: number;
  readonly deletedScratchObjects: number;
  readonly stoppedTasks: number;
  /** What cleanup could not check or do, in words (a storage without ListMultipartUploads). */
  readonly notChecked?: readonly string[];
}

/** What Step Functions catches: the error name and its cause (a Lambda error's JSON, an ECS task description, …). */
export interface StateFailure {
  readonly Error?: string;
  readonly Cause?: string;
}

/**
 * The execution state between the lifecycle's states, after Validate. Every Lambda state gets all of
 * it as its event and reads what it needs. Before Validate succeeds the state is the execution input
 * (plus `failure` when Validate failed).
 */
export interface LifecycleState {
  readonly job?: JobRef;
  readonly launch?: LaunchSpec;
  readonly plan?: PlanRef;
  readonly assembled?: { readonly assembledObjects: number };
  readonly failure?: StateFailure;
  readonly result?: { readonly TransformJobStatus: string; readonly FailureReason?: string };
  readonly cleanup?: CleanupReport;
  /** Present when the execution input was a bare request and Validate rejected it. */
  readonly TransformJobName?: unknown;
  /** Present when the execution input was a schedule's envelope and Validate rejected it. */
  readonly request?: unknown;
}

export class LifecycleStateError extends Error {
  override readonly name = 'LifecycleStateError';
}

export function requireJob(state: LifecycleState, stage: string): JobRef {
  if (!state.job)
    throw new LifecycleStateError(`the ${stage} step needs $.job (the Validate step's JobRef) in its input`);
  return state.job;
}

export function requirePlan(state: LifecycleState, stage: string): PlanRef {
  if (!state.plan)
    throw new LifecycleStateError(`the ${stage} step needs $.plan (the Plan step's PlanRef) in its input`);
  return state.plan;
}
