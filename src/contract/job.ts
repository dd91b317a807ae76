/**
 * The normalized job: what validation returns and every later stage (plan, sidecar, assemble,
 * finalize, cleanup, local runner) consumes. Field names are SageMaker's CreateTransformJob names;
 * every default that SageMaker fixes is explicit here. Three fields are negotiated with the model at
 * run time (request > GET /execution-parameters > defaults, see REFERENCE.md) and are therefore
 * `undefined` when the request did not set them: MaxConcurrentTransforms, MaxPayloadInMB, BatchStrategy.
 */

export type SplitType = 'None' | 'Line' | 'RecordIO' | 'TFRecord';
export type CompressionType = 'None' | 'Gzip';
export type BatchStrategy = 'SingleRecord' | 'MultiRecord';
export type AssembleWith = 'None' | 'Line';
export type JoinSource = 'None' | 'Input';
export type S3DataType = 'S3Prefix' | 'ManifestFile';

/** How a CSV header line is treated (extension; SageMaker sends it to the model as data). */
export type CsvHeaderMode = 'None' | 'Skip' | 'Repeat';

/** Our own optional request fields. None changes the meaning of a SageMaker field. */
export interface JobExtensions {
  /** Split `text/csv` on record boundaries that respect RFC 4180 quotes (a quoted newline stays in its record). @default false */
  readonly CsvQuotedNewlines: boolean;
  /** `Skip`: drop the first line of each object. `Repeat`: send it as the first line of every mini-batch and keep it out of the output. @default 'None' */
  readonly CsvHeader: CsvHeaderMode;
  /** Failed records an object may have before it fails (records isolated to an errors file). 0 = SageMaker's all-or-nothing. @default 0 */
  readonly MaxFailedRecordsPerObject: number;
  /** Percentage of an object's records that may fail (0–100). Both thresholds must hold. @default 0 */
  readonly MaxFailedRecordsPercent: number;
  /** Objects of at least this size that can be split on record boundaries are cut into byte-range shards. 0 disables sharding. @default 64 */
  readonly ShardMinSizeInMB: number;
  /** Seconds to wait for the model's GET /ping to answer 200 before the task fails. @default 300 */
  readonly ModelStartupTimeoutInSeconds: number;
  /**
   * How filters read a slice's end: `Inclusive` as SageMaker's developer guide describes (`$[1:4]` is
   * the second through fifth columns), or `Exclusive` as Python and RFC 9535 JSONPath do (`$[1:4]` is
   * the second through fourth). @default 'Inclusive'
   */
  readonly JsonPathSliceEnd: SliceEnd;
  /**
   * The name of an earlier job of this deployment whose completed outputs this job keeps instead of
   * recomputing (docs/JOB.md, "Resuming a job"). @default - none: every object is processed
   */
  readonly ResumeFrom?: string;
  /**
   * Halve a MultiRecord mini-batch that the model answers with HTTP 413 or does not answer within
   * InvocationsTimeoutInSeconds, down to single records, instead of SageMaker's retry-then-fail.
   * Record isolation (MaxFailedRecordsPerObject / MaxFailedRecordsPercent) halves regardless: it
   * needs bisection to find the failing records. @default false
   */
  readonly SplitBatchOnFailure: boolean;
  /**
   * Keep the `.out` files a stopped job completed. SageMaker stores no output of a job stopped
   * before it completed, so by default a stopped job's outputs are removed. @default false
   */
  readonly KeepOutputsOnStop: boolean;
}

/** How a JSONPath slice's end is read (docs/DATA-PLANE.md, "Slice ends"). */
export type SliceEnd = 'Inclusive' | 'Exclusive';

/** Where a job runs, resolved from TransformResources.InstanceType by the instance catalog. */
export type Capacity =
  | {
      readonly kind: 'fargate';
      /** Task CPU units (1024 = 1 vCPU), a valid Fargate value. */
      readonly cpu: number;
      /** Task memory in MiB, valid for `cpu`. */
      readonly memoryMiB: number;
    }
  | {
      readonly kind: 'ec2';
      /** The EC2 instance type behind the ml.* type, e.g. `g5.xlarge`. */
      readonly instanceType: string;
      readonly cpu: number;
      readonly memoryMiB: number;
      /** NVIDIA GPUs the task declares. */
      readonly gpus: number;
      /** AWS Neuron devices (Inferentia2 / Trainium) the task maps in. */
      readonly neuronDevices: number;
    }
  | { readonly kind: 'local' };

export interface NormalizedJob {
  readonly TransformJobName: string;
  readonly ModelName: string;
  readonly MaxConcurrentTransforms?: number;
  readonly MaxPayloadInMB?: number;
  readonly BatchStrategy?: BatchStrategy;
  readonly Environment: Readonly<Record<string, string>>;
  readonly ModelClientConfig: {
    readonly InvocationsTimeoutInSeconds: number;
    readonly InvocationsMaxRetries: number;
  };
  readonly TransformInput: {
    readonly DataSource: {
      readonly S3DataSource: { readonly S3DataType: S3DataType; readonly S3Uri: string };
    };
    readonly ContentType?: string;
    readonly CompressionType: CompressionType;
    readonly SplitType: SplitType;
  };
  readonly TransformOutput: {
    readonly S3OutputPath: string;
    readonly Accept?: string;
    readonly AssembleWith: AssembleWith;
    readonly KmsKeyId?: string;
  };
  readonly TransformResources: {
    readonly InstanceType: string;
    readonly InstanceCount: number;
    readonly VolumeKmsKeyId?: string;
    readonly TransformAmiVersion?: string;
  };
  readonly DataProcessing: {
    readonly InputFilter: string;
    readonly OutputFilter: string;
    readonly JoinSource: JoinSource;
  };
  readonly Tags: ReadonlyArray<{ readonly Key: string; readonly Value: string }>;
  /** Batch data capture: manifests of the job's inputs and outputs (src/lifecycle/capture.ts). */
  readonly DataCaptureConfig?: {
    readonly DestinationS3Uri: string;
    readonly KmsKeyId?: string;
    readonly GenerateInferenceId?: boolean;
  };
  readonly Extensions: JobExtensions;
  /** Request fields accepted but ignored here, each with the reason (absent when none). */
  readonly IgnoredFields?: ReadonlyArray<{ readonly path: string; readonly message: string }>;
  /** Resolved from the instance catalog and the deployment's enabled capacity. */
  readonly Capacity: Capacity;
}

/** The record of a job kept in its work location (`job.json`). */
export interface StoredJob {
  readonly job: NormalizedJob;
  /** The Step Functions execution (or local run) that owns this job name. */
  readonly executionName?: string;
  readonly creationTime: string;
  /** The earlier job named by `Extensions.ResumeFrom`, checked by the validate stage: where its work is. */
  readonly resumeFrom?: { readonly jobName: string; readonly workUri: string };
}
