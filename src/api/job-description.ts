import type { TransformJobStatus } from '../contract/description';
import type { NormalizedJob } from '../contract/job';
import type { EffectiveParameters } from '../contract/parameters';
import { type ApiIdentity, transformJobArn } from './arns';
import { epochSeconds } from './protocol';

/** What the server knows of a job, whichever back end runs it. Times are ISO 8601. */
export interface JobView {
  readonly name: string;
  readonly status: TransformJobStatus;
  /** The request as the client sent it (for the members validation keeps out of the normalized job). */
  readonly request: Readonly<Record<string, unknown>>;
  /** The normalized job: the request with SageMaker's defaults filled in. */
  readonly job?: NormalizedJob;
  readonly creationTime: string;
  readonly lastModifiedTime: string;
  readonly startTime?: string;
  readonly endTime?: string;
  readonly failureReason?: string;
  /** The negotiated parameters, once the workers have reported them. */
  readonly effective?: EffectiveParameters;
}

/**
 * DescribeTransformJob's response: every member of SageMaker's (botocore's DescribeTransformJobResponse,
 * docs/API.md) that applies, with the values in force: SageMaker's defaults filled in, and
 * MaxConcurrentTransforms, MaxPayloadInMB and BatchStrategy as negotiated with the model once known
 * (before that, as requested). Timestamps in epoch seconds.
 */
export function describeResponse(v: JobView, id: ApiIdentity): Record<string, unknown> {
  const job = v.job;
  const request = v.request as Record<string, unknown>;
  const asked = {
    MaxConcurrentTransforms: job?.MaxConcurrentTransforms,
    MaxPayloadInMB: job?.MaxPayloadInMB,
    BatchStrategy: job?.BatchStrategy,
  };
  const parameters = v.effective ?? asked;
  return dropUndefined({
    TransformJobName: v.name,
    TransformJobArn: transformJobArn(id, v.name),
    TransformJobStatus: v.status,
    FailureReason: v.failureReason,
    ModelName: job?.ModelName ?? request.ModelName,
    MaxConcurrentTransforms: parameters.MaxConcurrentTransforms,
    ModelClientConfig: job?.ModelClientConfig ?? request.ModelClientConfig,
    MaxPayloadInMB: parameters.MaxPayloadInMB,
    BatchStrategy: parameters.BatchStrategy,
    Environment: job?.Environment ?? request.Environment,
    TransformInput: job?.TransformInput ?? request.TransformInput,
    TransformOutput: job?.TransformOutput ?? request.TransformOutput,
    // Accepted and echoed; nothing is captured here (docs/API.md).
    DataCaptureConfig: request.DataCaptureConfig,
    TransformResources: job
      ? {
          InstanceType: job.TransformResources.InstanceType,
          InstanceCount: job.TransformResources.InstanceCount,
          ...(job.TransformResources.VolumeKmsKeyId
            ? { VolumeKmsKeyId: job.TransformResources.VolumeKmsKeyId }
            : {}),
        }
      : request.TransformResources,
    CreationTime: epochSeconds(v.creationTime),
    TransformStartTime: v.startTime ? epochSeconds(v.startTime) : undefined,
    TransformEndTime: v.endTime ? epochSeconds(v.endTime) : undefined,
    DataProcessing: job?.DataProcessing ?? request.DataProcessing,
    ExperimentConfig: request.ExperimentConfig,
  });
}

/** ListTransformJobs' TransformJobSummary. */
export function summaryResponse(v: JobView, id: ApiIdentity): Record<string, unknown> {
  return dropUndefined({
    TransformJobName: v.name,
    TransformJobArn: transformJobArn(id, v.name),
    CreationTime: epochSeconds(v.creationTime),
    TransformEndTime: v.endTime ? epochSeconds(v.endTime) : undefined,
    LastModifiedTime: epochSeconds(v.lastModifiedTime),
    TransformJobStatus: v.status,
    FailureReason: v.failureReason,
  });
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, value]) => value !== undefined));
}
