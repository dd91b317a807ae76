import type { CleanupReport, JobRef, PlanRef } from '../../src/lifecycle/types';
import type { LaunchSpec } from './deployment';

export { STATE_NAMES } from '../../src/lifecycle/state-names';

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
