import type { TransformJobStatus } from '../contract/description';
import type { ExecutionStatus } from '@aws-sdk/client-sfn';

export type { TransformJobStatus };

/** DescribeTransformJob's statuses, in the order `list --sort-by Status` uses. */
export const TRANSFORM_JOB_STATUSES: readonly TransformJobStatus[] = [
  'Completed',
  'Failed',
  'InProgress',
  'Stopped',
  'Stopping',
];

/** The statuses after which a job never changes. */
export function isTerminal(status: TransformJobStatus): boolean {
  return status === 'Completed' || status === 'Failed' || status === 'Stopped';
}

/**
 * A job's status from its execution's. The state machine succeeds only for a Completed job, but a
 * SUCCEEDED execution whose output says otherwise is believed (the output is finalize's verdict).
 * StopExecution ends a standard workflow at once, so the execution is never Stopping (describe shows
 * the job Stopping until its cleanup has recorded it, src/client/describe.ts); a redrive that has been
 * asked for but not begun (PENDING_REDRIVE) is still in progress.
 */
export function jobStatusOf(
  status: ExecutionStatus | string | undefined,
  output?: unknown,
): TransformJobStatus {
  switch (status) {
    case 'SUCCEEDED': {
      const said = (output as { TransformJobStatus?: unknown } | undefined)?.TransformJobStatus;
      return said === 'Failed' || said === 'Stopped' ? said : 'Completed';
    }
    case 'FAILED':
    case 'TIMED_OUT':
      return 'Failed';
    case 'ABORTED':
      return 'Stopped';
    default:
      return 'InProgress';
  }
}

/** ListExecutions' statusFilter values that make up a job status (each is one listing). */
export function executionStatusesFor(status: TransformJobStatus): ExecutionStatus[] {
  switch (status) {
    case 'InProgress':
      return ['RUNNING', 'PENDING_REDRIVE'];
    case 'Completed':
      return ['SUCCEEDED'];
    case 'Failed':
      return ['FAILED', 'TIMED_OUT'];
    case 'Stopped':
      return ['ABORTED'];
    case 'Stopping':
      return [];
  }
}
