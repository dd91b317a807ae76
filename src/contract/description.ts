import type { NormalizedJob } from './job';
import type { Counters, FailureCategory } from './results';

export type { FailureCategory };

/** SageMaker caps FailureReason at 1024 characters. */
export const FAILURE_REASON_MAX = 1024;

export type TransformJobStatus = 'InProgress' | 'Completed' | 'Failed' | 'Stopping' | 'Stopped';

/** DescribeTransformJob's shape, plus the progress counters SageMaker does not offer. */
export interface TransformJobDescription {
  readonly TransformJobName: string;
  readonly TransformJobStatus: TransformJobStatus;
  readonly FailureReason?: string;
  readonly ModelName: string;
  readonly MaxConcurrentTransforms?: number;
  readonly MaxPayloadInMB?: number;
  readonly BatchStrategy?: string;
  readonly Environment: Readonly<Record<string, string>>;
  readonly ModelClientConfig: NormalizedJob['ModelClientConfig'];
  readonly TransformInput: NormalizedJob['TransformInput'];
  readonly TransformOutput: NormalizedJob['TransformOutput'];
  readonly TransformResources: NormalizedJob['TransformResources'];
  readonly DataProcessing: NormalizedJob['DataProcessing'];
  readonly CreationTime: string;
  readonly TransformStartTime?: string;
  readonly TransformEndTime?: string;
  /** Our extension: where the job stands, summed over its workers. */
  readonly Progress: Counters & { readonly skippedObjects: number };
  /** Our extension: each failed object with its reason (at most 100 listed). */
  readonly FailedObjects: ReadonlyArray<{
    readonly uri: string;
    readonly reason: string;
    readonly offset?: number;
  }>;
  readonly SummaryUri: string;
  /** Our extension: request fields accepted and ignored, with the reason (absent when none). */
  readonly IgnoredFields?: NormalizedJob['IgnoredFields'];
}

const CATEGORY_PREFIX = /^(ClientError|AlgorithmError|InternalServerError|CapacityError): /;

/**
 * The FailureReason: SageMaker's category prefix, then our detail (job, object, record offset,
 * cause), within SageMaker's 1024 characters (longer text ends with `…`). Text that already has a
 * category keeps it.
 */
export function failureReason(category: FailureCategory, text: string): string {
  const full = CATEGORY_PREFIX.test(text) ? text : `${category}: ${text}`;
  return full.length <= FAILURE_REASON_MAX ? full : `${full.slice(0, FAILURE_REASON_MAX - 1)}…`;
}
