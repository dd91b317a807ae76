import type { EffectiveParameters } from './parameters';

/**
 * What a sidecar reports: progress while it runs (`<work>/progress/<partition>.json`, rewritten
 * periodically) and its final result (`<work>/results/<partition>.json`). The assemble and finalize
 * stages, `describe` and the local runner read them.
 */

export type ItemStatus = 'Completed' | 'Failed';

export interface ItemResult {
  /** Index into Plan.objects. */
  readonly object: number;
  readonly shard: number;
  readonly status: ItemStatus;
  readonly records: number;
  /** Records isolated into the errors file (extension); 0 under SageMaker's all-or-nothing default. */
  readonly failedRecords: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly durationMs: number;
  /** Why the item failed; `offset` is the byte offset of the record concerned, where known. */
  readonly error?: { readonly message: string; readonly offset?: number };
}

export interface Counters {
  objectsTotal: number;
  objectsCompleted: number;
  objectsFailed: number;
  /** Objects the job named by `Extensions.ResumeFrom` completed, kept rather than processed again. */
  objectsCompletedEarlier: number;
  records: number;
  failedRecords: number;
  bytesIn: number;
  bytesOut: number;
  invocations: number;
  invocationRetries: number;
  modelErrors4xx: number;
  modelErrors5xx: number;
  modelTimeouts: number;
}

export const emptyCounters = (): Counters => ({
  objectsTotal: 0,
  objectsCompleted: 0,
  objectsFailed: 0,
  objectsCompletedEarlier: 0,
  records: 0,
  failedRecords: 0,
  bytesIn: 0,
  bytesOut: 0,
  invocations: 0,
  invocationRetries: 0,
  modelErrors4xx: 0,
  modelErrors5xx: 0,
  modelTimeouts: 0,
});

export function addCounters(a: Counters, b: Counters): Counters {
  const out = { ...a };
  for (const k of Object.keys(out) as Array<keyof Counters>) out[k] += b[k];
  return out;
}

export interface PartitionProgress {
  readonly partition: number;
  readonly updatedAt: string;
  readonly counters: Counters;
}

export interface PartitionResult {
  readonly partition: number;
  readonly startedAt: string;
  readonly endedAt: string;
  /** The parameters in force after negotiating with the model (request > /execution-parameters > defaults). */
  readonly effective: EffectiveParameters;
  readonly items: readonly ItemResult[];
  readonly counters: Counters;
  /** Set when the partition could not finish (model never became healthy, model process died, storage unreachable, stopped). */
  readonly fatal?: string;
  /** Whose failure `fatal` is, in SageMaker's FailureReason terms (absent: InternalServerError). */
  readonly fatalCategory?: FailureCategory;
}

/**
 * The categories SageMaker's FailureReasons start with (`<Category>: <message>`, e.g. `ClientError:
 * See job logs for more information`, `AlgorithmError: Model container failed to respond to ping`;
 * docs/JOB.md, "FailureReason"): ClientError for what the request, its data or the model's answers
 * caused; AlgorithmError for a model container that does not start, answer or stay up;
 * InternalServerError for a failure of this system's own parts; CapacityError when no compute can
 * be had.
 */
export type FailureCategory = 'ClientError' | 'AlgorithmError' | 'InternalServerError' | 'CapacityError';
