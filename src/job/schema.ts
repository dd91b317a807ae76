import { z } from 'zod';
import { MAX_PAYLOAD_IN_MB } from '../contract/parameters';

/**
 * The CreateTransformJob request, field for field (names, types, ranges, patterns and defaults from
 * SageMaker's API reference; see REFERENCE.md), plus our optional `Extensions` object. This schema
 * checks shape and per-field limits only; rules that involve several fields live in `validate.ts`.
 * Exported as JSON Schema by `jobRequestJsonSchema()` (it documents the console input).
 */

/** SageMaker's own limits, named where they are encoded. */
export const LIMITS = {
  /** TransformJobName, ModelName: 63 characters. */
  nameMaxLength: 63,
  /** MaxPayloadInMB range and the MaxConcurrentTransforms × MaxPayloadInMB product. */
  maxPayloadInMB: MAX_PAYLOAD_IN_MB,
  /** Environment: at most 16 entries, keys up to 1024, values up to 10240 characters. */
  environmentMaxEntries: 16,
  environmentValueMaxLength: 10240,
  /** S3Uri, S3OutputPath: 1024 characters. */
  s3UriMaxLength: 1024,
  /** ContentType, Accept: 256 characters. */
  mediaTypeMaxLength: 256,
  /** KmsKeyId, VolumeKmsKeyId: 2048 characters. */
  kmsKeyIdMaxLength: 2048,
  /** InputFilter, OutputFilter: 63 characters. */
  filterMaxLength: 63,
  /** Tags: 50 per resource; key 1–128, value 0–256. */
  tagsMaxEntries: 50,
  tagKeyMaxLength: 128,
  tagValueMaxLength: 256,
  /** InvocationsTimeoutInSeconds 1–3600, InvocationsMaxRetries 0–3. */
  invocationTimeoutMax: 3600,
  invocationRetriesMax: 3,
  /** SageMaker's cap on InstanceCount for transform; a deployment may set a lower one. */
  instanceCountMax: 100,
} as const;

export const TRANSFORM_JOB_NAME = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;
export const MODEL_NAME = /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
export const ENVIRONMENT_KEY = /^[a-zA-Z_][a-zA-Z0-9_]{0,1023}$/;
/** SageMaker's pattern for tag keys and values: letters, digits, whitespace and `_.:/=+-@`. */
export const TAG_TEXT = /^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$/u;
export const INSTANCE_TYPE = /^ml\.[a-z0-9]+\.[a-z0-9]+$/;

const int = (min: number, max?: number) => {
  const base = z.int().min(min);
  return max === undefined ? base : base.max(max);
};
const text = (max: number, min = 0) => z.string().min(min).max(max);
/** SageMaker accepts MultiRecord/SingleRecord; models' /execution-parameters say MULTI_RECORD. */
const batchStrategy = z.enum(['SingleRecord', 'MultiRecord', 'SINGLE_RECORD', 'MULTI_RECORD']);

export const ExtensionsSchema = z.strictObject({
  CsvQuotedNewlines: z.boolean().optional(),
  CsvHeader: z.enum(['None', 'Skip', 'Repeat']).optional(),
  MaxFailedRecordsPerObject: int(0).optional(),
  MaxFailedRecordsPercent: z.number().min(0).max(100).optional(),
  ShardMinSizeInMB: int(0, 1024 * 1024).optional(),
  ModelStartupTimeoutInSeconds: int(1, 3600).optional(),
  JsonPathSliceEnd: z.enum(['Inclusive', 'Exclusive']).optional(),
  ResumeFrom: text(LIMITS.nameMaxLength, 1).regex(TRANSFORM_JOB_NAME).optional(),
  SplitBatchOnFailure: z.boolean().optional(),
  KeepOutputsOnStop: z.boolean().optional(),
});

export const TransformJobRequestSchema = z.strictObject({
  TransformJobName: text(LIMITS.nameMaxLength, 1).regex(TRANSFORM_JOB_NAME),
  ModelName: text(LIMITS.nameMaxLength, 1).regex(MODEL_NAME),
  MaxConcurrentTransforms: int(0).optional(),
  MaxPayloadInMB: int(0, LIMITS.maxPayloadInMB).optional(),
  BatchStrategy: batchStrategy.optional(),
  Environment: z.record(z.string().regex(ENVIRONMENT_KEY), text(LIMITS.environmentValueMaxLength)).optional(),
  ModelClientConfig: z
    .strictObject({
      InvocationsTimeoutInSeconds: int(1, LIMITS.invocationTimeoutMax).optional(),
      InvocationsMaxRetries: int(0, LIMITS.invocationRetriesMax).optional(),
    })
    .optional(),
  TransformInput: z.strictObject({
    DataSource: z.strictObject({
      S3DataSource: z.strictObject({
        S3DataType: z.enum(['S3Prefix', 'ManifestFile']),
        S3Uri: text(LIMITS.s3UriMaxLength, 1),
      }),
    }),
    ContentType: text(LIMITS.mediaTypeMaxLength).optional(),
    CompressionType: z.enum(['None', 'Gzip']).optional(),
    SplitType: z.enum(['None', 'Line', 'RecordIO', 'TFRecord']).optional(),
  }),
  TransformOutput: z.strictObject({
    S3OutputPath: text(LIMITS.s3UriMaxLength, 1),
    Accept: text(LIMITS.mediaTypeMaxLength).optional(),
    AssembleWith: z.enum(['None', 'Line']).optional(),
    KmsKeyId: text(LIMITS.kmsKeyIdMaxLength).optional(),
  }),
  TransformResources: z.strictObject({
    InstanceType: z.string().regex(INSTANCE_TYPE),
    InstanceCount: int(1),
    VolumeKmsKeyId: text(LIMITS.kmsKeyIdMaxLength).optional(),
    /**
     * SageMaker's documented values (API reference, TransformResources): NVIDIA driver 470 or 535 on
     * Amazon Linux 2. Accepted and ignored: GPU tasks run on the deployment's ECS GPU-optimized AMI.
     */
    TransformAmiVersion: z
      .enum(['al2-ami-sagemaker-batch-gpu-470', 'al2-ami-sagemaker-batch-gpu-535'])
      .optional(),
  }),
  DataProcessing: z
    .strictObject({
      InputFilter: text(LIMITS.filterMaxLength).optional(),
      OutputFilter: text(LIMITS.filterMaxLength).optional(),
      JoinSource: z.enum(['None', 'Input']).optional(),
    })
    .optional(),
  Tags: z
    .array(
      z.strictObject({
        Key: text(LIMITS.tagKeyMaxLength, 1).regex(TAG_TEXT),
        Value: text(LIMITS.tagValueMaxLength).regex(TAG_TEXT),
      }),
    )
    .max(LIMITS.tagsMaxEntries)
    .optional(),
  /**
   * Accepted so that a request copied from SageMaker validates unchanged; SageMaker Experiments has
   * no counterpart here, so it is ignored.
   */
  ExperimentConfig: z.record(z.string(), z.unknown()).optional(),
  /** Batch data capture (API_BatchDataCaptureConfig): manifests written when the job completes. */
  DataCaptureConfig: z
    .strictObject({
      DestinationS3Uri: text(LIMITS.s3UriMaxLength, 1),
      KmsKeyId: text(LIMITS.kmsKeyIdMaxLength).optional(),
      GenerateInferenceId: z.boolean().optional(),
    })
    .optional(),
  Extensions: ExtensionsSchema.optional(),
});

export type TransformJobRequest = z.infer<typeof TransformJobRequestSchema>;

/** The request schema as JSON Schema (draft 2020-12), for documentation and editors. */
export function jobRequestJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(TransformJobRequestSchema, { target: 'draft-2020-12', io: 'input' }) as Record<
    string,
    unknown
  >;
}
