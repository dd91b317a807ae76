import type { EffectiveParameters } from '../contract/parameters';
import { contentKind } from '../job/content-types';
import { shardGridBytes } from './shard';
import type {
  AssembleWith,
  BatchStrategy,
  CompressionType,
  CsvHeaderMode,
  JoinSource,
  NormalizedJob,
  SliceEnd,
  SplitType,
} from '../contract/job';

/** MaxPayloadInMB counts mebibytes: 6 means 6 × 1,048,576 bytes. */
export const MIB = 1_048_576;

/** Everything the data plane needs to know about a job, in one flat object. */
export interface DataPlaneOptions {
  readonly splitType: SplitType;
  readonly compressionType: CompressionType;
  readonly batchStrategy: BatchStrategy;
  /** 0 means no limit: only for SplitType None (streamed) or SingleRecord. */
  readonly maxPayloadInMB: number;
  readonly contentType?: string;
  readonly accept?: string;
  readonly inputFilter?: string;
  readonly outputFilter?: string;
  readonly joinSource: JoinSource;
  readonly assembleWith: AssembleWith;
  readonly csvQuotedNewlines?: boolean;
  readonly csvHeader?: CsvHeaderMode;
  /** MultiRecord mini-batches close at multiples of this many bytes, where shards may be cut (`shardGridBytes`). */
  readonly batchGridBytes?: number;
  /** How filters read slice ends. @default 'Inclusive' (SageMaker's developer guide) */
  readonly jsonPathSliceEnd?: SliceEnd;
  /**
   * DataCaptureConfig.GenerateInferenceId: the job start time (`YYYY-MM-DDTHH:MM:SSZ`, UTC) appended
   * with a fresh random UUID to every output record. The same time for every record of the job.
   */
  readonly inferenceTime?: string;
}

/**
 * The data-plane options of a normalized job, given the parameters negotiated with the model at run
 * time (`negotiateParameters`).
 */
export function dataPlaneOptions(
  job: NormalizedJob,
  effective: Pick<EffectiveParameters, 'BatchStrategy' | 'MaxPayloadInMB'>,
  jobStartTime?: string,
): DataPlaneOptions {
  const input = job.TransformInput;
  const inference = job.DataCaptureConfig?.GenerateInferenceId === true;
  if (inference && jobStartTime === undefined) {
    throw new Error('DataCaptureConfig.GenerateInferenceId needs the job start time');
  }
  return {
    ...(inference ? { inferenceTime: inferenceTime(jobStartTime!) } : {}),
    splitType: input.SplitType,
    compressionType: input.CompressionType,
    batchStrategy: effective.BatchStrategy,
    maxPayloadInMB: effective.MaxPayloadInMB,
    contentType: input.ContentType,
    accept: job.TransformOutput.Accept,
    inputFilter: job.DataProcessing.InputFilter,
    outputFilter: job.DataProcessing.OutputFilter,
    joinSource: job.DataProcessing.JoinSource,
    assembleWith: job.TransformOutput.AssembleWith,
    csvQuotedNewlines: job.Extensions.CsvQuotedNewlines,
    csvHeader: job.Extensions.CsvHeader,
    jsonPathSliceEnd: job.Extensions.JsonPathSliceEnd,
    batchGridBytes: shardGridBytes({
      splitType: input.SplitType,
      compressionType: input.CompressionType,
      csvQuotedNewlines: job.Extensions.CsvQuotedNewlines,
      csvHeader: job.Extensions.CsvHeader,
      shardMinSizeInMB: job.Extensions.ShardMinSizeInMB,
    }),
  };
}

/** SageMaker's SageMakerInferenceTime form: UTC to the second, `2022-08-30T00:49:15Z`. */
export function inferenceTime(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new Error(`not a time: ${JSON.stringify(iso)}`);
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

/** SplitType None with MaxPayloadInMB 0: the object goes to the model as one streamed body. */
export function streamsWholeObject(o: Pick<DataPlaneOptions, 'splitType' | 'maxPayloadInMB'>): boolean {
  return o.splitType === 'None' && o.maxPayloadInMB === 0;
}

const isFilter = (path: string | undefined) => path !== undefined && path !== '' && path !== '$';

/**
 * Combinations the data plane cannot run. Job validation rejects these first with field paths; this
 * is the data plane's own guard, so a caller that skipped validation gets a clear error, not garbage.
 */
export function unsupportedOptions(o: DataPlaneOptions): string[] {
  const problems: string[] = [];
  const streamed = streamsWholeObject(o);
  if (o.maxPayloadInMB === 0 && o.splitType !== 'None' && o.batchStrategy === 'MultiRecord') {
    problems.push('MaxPayloadInMB 0 (no limit) needs SplitType None or BatchStrategy SingleRecord');
  }
  if (streamed && (isFilter(o.inputFilter) || isFilter(o.outputFilter) || o.joinSource === 'Input')) {
    problems.push('filters and JoinSource Input need each object in memory; MaxPayloadInMB 0 streams it');
  }
  const csvExtension = o.csvQuotedNewlines || (o.csvHeader !== undefined && o.csvHeader !== 'None');
  if (csvExtension && (o.splitType !== 'Line' || contentKind(o.contentType) !== 'csv')) {
    problems.push('CsvQuotedNewlines and CsvHeader need ContentType text/csv and SplitType Line');
  }
  if (
    (isFilter(o.inputFilter) || isFilter(o.outputFilter) || o.joinSource === 'Input') &&
    !isText(o.splitType)
  ) {
    problems.push(`filters and JoinSource Input cannot apply to binary ${o.splitType} records`);
  }
  if (o.inferenceTime !== undefined) {
    const kind =
      o.joinSource === 'Input' ? contentKind(o.contentType) : contentKind(o.accept ?? o.contentType);
    if (kind === 'other') problems.push('GenerateInferenceId needs CSV, JSON or JSON Lines output');
    if (streamed)
      problems.push('GenerateInferenceId needs each output in memory; MaxPayloadInMB 0 streams it');
    if (!isText(o.splitType))
      problems.push(`GenerateInferenceId cannot apply to binary ${o.splitType} records`);
  }
  return problems;
}

const isText = (s: SplitType) => s === 'Line' || s === 'None';

export function assertSupported(o: DataPlaneOptions): void {
  const problems = unsupportedOptions(o);
  if (problems.length > 0) throw new Error(`unsupported data-plane options: ${problems.join('; ')}`);
}
