import { failureReason, type TransformJobDescription } from '../../src/contract/description';
import { describeStateFailure, finalizeStage, stateFailureCategory } from '../../src/lifecycle/finalize';
import { assembleThenFinalize } from '../../src/lifecycle/failure-path';
import type { Storage } from '../../src/storage/storage';
import { type LifecycleState, requireJob, type StateFailure } from '../../src/contract/state';
import { deployedStorage } from '../shared/storage';

/** What a failure that could not be recorded in a summary still returns: enough for the Fail state. */
export interface FailureDescription {
  readonly TransformJobName?: string;
  readonly TransformJobStatus: 'Failed';
  readonly FailureReason: string;
}

/**
 * The Finalize and FinalizeFailure steps (one function): writes the job summary and returns the
 * DescribeTransformJob-shaped result (src/lifecycle/finalize.ts). With `$.failure` the job failed
 * in an earlier step: the result is Failed with a FailureReason made from the caught error.
 */
export async function handler(state: LifecycleState): Promise<TransformJobDescription | FailureDescription> {
  const storage = deployedStorage();
  if (!state.failure) return finalizeStage(requireJob(state, 'Finalize'), storage, {});
  return describeFailure(state, state.failure, storage);
}

/**
 * Never throws for the failure it describes: when there is no job (Validate rejected the request) or
 * the summary cannot be written, the reason is made from the caught error alone, so the execution
 * still ends with a FailureReason rather than with this step's own error.
 */
export async function describeFailure(
  state: LifecycleState,
  failure: StateFailure,
  storage: Storage,
): Promise<TransformJobDescription | FailureDescription> {
  if (state.job) {
    try {
      return await assembleThenFinalize(state.job, state.plan, storage, { failure });
    } catch (e) {
      console.error(
        `could not write the summary of failed job "${state.job.jobName}": ${(e as Error).stack ?? e}`,
      );
    }
  }
  const name = state.job?.jobName ?? requestedJobName(state);
  const reason = describeStateFailure(failure);
  const text = name && !reason.includes(`"${name}"`) ? `Transform job "${name}": ${reason}` : reason;
  return {
    ...(name ? { TransformJobName: name } : {}),
    TransformJobStatus: 'Failed',
    FailureReason: failureReason(stateFailureCategory(failure), text),
  };
}

/** The job name of a request Validate rejected: the input was the request itself or a schedule's envelope. */
function requestedJobName(state: LifecycleState): string | undefined {
  const fromRequest = (state.request as { TransformJobName?: unknown } | undefined)?.TransformJobName;
  const name = typeof state.TransformJobName === 'string' ? state.TransformJobName : fromRequest;
  return typeof name === 'string' ? name : undefined;
}
