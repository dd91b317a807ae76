import type { ApiIdentity } from './arns';
import type { JobView } from './job-description';
import type { ListQuery } from './listing';
import { ApiError } from './protocol';
import { transformJobArn } from './arns';

/**
 * Where the server's transform jobs run: on this machine (`--local`) or on a deployed stack
 * (`--stack`, `--state-machine-arn`). The server speaks the protocol; a back end runs jobs and says
 * where they stand.
 */
export interface TransformJobs {
  /** What the server prints about where jobs run. */
  readonly label: string;
  readonly identity: ApiIdentity;
  /** Starts a job. Throws ApiError: ValidationException (every problem), ResourceInUse (a used name). */
  create(request: Record<string, unknown>): Promise<void>;
  /** The job, or undefined when there is none of that name. */
  get(name: string): Promise<JobView | undefined>;
  list(query: ListQuery): Promise<{ views: JobView[]; nextToken?: string }>;
  /** Asks the job to stop; a job that already ended is left as it is. Throws when there is no such job. */
  stop(name: string): Promise<void>;
  /** Stops what this back end runs itself and releases its resources. */
  close(): Promise<void>;
}

/**
 * A used job name. The real service's words for a processing job, with the transform job's ARN
 * (docs/API.md: the transform-job wording is not confirmed).
 */
export function nameInUse(id: ApiIdentity, name: string): ApiError {
  return new ApiError(
    'ResourceInUse',
    `Job name must be unique within an AWS account and region, and a job with this name already exists (${transformJobArn(id, name)})`,
  );
}

/**
 * A missing job for DescribeTransformJob: ValidationException, which the waiter
 * TransformJobCompletedOrStopped treats as final (docs/API.md).
 */
export function jobNotFound(id: ApiIdentity, name: unknown): ApiError {
  return new ApiError(
    'ValidationException',
    `Could not find transform job "${transformJobArn(id, String(name))}".`,
  );
}

/** A missing job for StopTransformJob: its API reference names ResourceNotFound. */
export function stopTargetNotFound(id: ApiIdentity, name: unknown): ApiError {
  return new ApiError(
    'ResourceNotFound',
    `Could not find transform job "${transformJobArn(id, String(name))}" to stop.`,
  );
}
