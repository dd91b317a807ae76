import { SFNClient } from '@aws-sdk/client-sfn';
import {
  cleanupStage,
  removeStoppedJobOutputs,
  type StoppedOutputsReport,
} from '../../src/lifecycle/cleanup';
import { finalizeStage } from '../../src/lifecycle/finalize';
import type { CleanupReport, JobRef } from '../../src/contract/state';
import type { TaskControl } from '../../src/lifecycle/cleanup';
import type { Storage } from '../../src/storage/storage';
import { EcsTaskControl } from '../shared/ecs-task-control';
import { jobOfExecution, type SfnSender } from '../../src/client/execution-history';
import type { LifecycleState } from '../../src/contract/state';
import { deployedStorage } from '../shared/storage';

/** What the EventBridge rule sends when an execution ends ABORTED, TIMED_OUT or FAILED. */
export interface ExecutionEndedEvent {
  readonly executionArn: string;
  readonly status: 'ABORTED' | 'TIMED_OUT' | 'FAILED' | string;
}

const NOTHING_TO_CLEAN: CleanupReport = { abortedUploads: 0, deletedScratchObjects: 0, stoppedTasks: 0 };

/**
 * The Cleanup and CleanupAfterFailure steps, and the target of the rule on ended executions: stops
 * the job's tasks, aborts its uploads, removes its scratch (src/lifecycle/cleanup.ts). Safe to run twice.
 */
export async function handler(event: LifecycleState | ExecutionEndedEvent): Promise<CleanupReport> {
  const tasks = new EcsTaskControl(clusterArn());
  if (isExecutionEnded(event))
    return cleanupEndedExecution(event, deployedStorage(), tasks, new SFNClient({}));
  if (!event.job) return NOTHING_TO_CLEAN; // Validate rejected the request: nothing was created.
  return cleanupStage(targetOf(event.job), deployedStorage(), tasks);
}

/**
 * An execution that ended without running its own cleanup (StopExecution and timeouts run no Catch).
 * Its tasks are stopped and its uploads aborted first; then a stopped or timed-out job gets the
 * summary its Finalize never wrote. A failed execution finalized itself already.
 */
export async function cleanupEndedExecution(
  event: ExecutionEndedEvent,
  storage: Storage,
  tasks: TaskControl,
  sfn: SfnSender,
): Promise<CleanupReport> {
  const job = await jobOfExecution(sfn, event.executionArn);
  if (!job) {
    console.log(
      `execution ${event.executionArn} ended ${event.status} before a job was validated: nothing to clean`,
    );
    return NOTHING_TO_CLEAN;
  }
  const report = await cleanupStage(targetOf(job), storage, tasks);
  // The summary is written last: until then Describe shows the job Stopping (src/client/describe.ts).
  let outputs: StoppedOutputsReport | undefined;
  if (event.status === 'ABORTED') {
    outputs = await removeStoppedJobOutputs(job, storage);
    await finalizeStage(job, storage, { stopped: true });
  }
  if (event.status === 'TIMED_OUT') {
    await finalizeStage(job, storage, {
      failure: { Error: 'States.Timeout', Cause: 'the execution ran longer than the state machine allows' },
    });
  }
  console.log(
    JSON.stringify({
      job: job.jobName,
      execution: event.executionArn,
      status: event.status,
      ...report,
      ...(outputs ?? {}),
    }),
  );
  return report;
}

function targetOf(job: JobRef) {
  return { jobName: job.jobName, workUri: job.workUri, outputUri: job.outputUri };
}

function isExecutionEnded(event: LifecycleState | ExecutionEndedEvent): event is ExecutionEndedEvent {
  return typeof (event as ExecutionEndedEvent).executionArn === 'string';
}

function clusterArn(): string {
  const arn = process.env.CLUSTER_ARN;
  if (!arn) throw new Error('the CLUSTER_ARN environment variable is not set');
  return arn;
}
