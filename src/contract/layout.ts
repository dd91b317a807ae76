import { joinUri } from '../storage/uri';

/**
 * Names of everything a job writes. One place, so the plan stage, the sidecar, the assemble,
 * finalize and cleanup stages and the local runner agree.
 *
 *   <S3OutputPath>/<relativeKey>.out             final output of an object that fully succeeded
 *   <S3OutputPath>/<relativeKey>.errors.jsonl    isolated record failures (extension, when any)
 *   <work>/plan.json                             the partition plan (every object; for the stages)
 *   <work>/partitions/<index>.json               one partition's work: all its sidecar reads
 *   <work>/partition-items.json                  `[{index}, …]`, the Distributed Map's items
 *   <work>/shards/<relativeKey>/<shard>.out      shard outputs awaiting assembly
 *   <work>/progress/<partition>.json             a sidecar's progress counters
 *   <work>/results/<partition>.json              a sidecar's final report (per-object outcome)
 *   <work>/summary.json                          the job summary written by finalize
 *   <jobNamesRoot>/<jobName>.json                 the job name's reservation (never expires)
 *   <DestinationS3Uri>/{input,output}/yyyy/mm/dd/hh/<jobName>.jsonl   data capture manifests
 */

export const OUTPUT_SUFFIX = '.out';
export const ERRORS_SUFFIX = '.errors.jsonl';

/** `<workRoot>/<jobName>/`: every scratch object of a job lives under it. */
export function jobWorkUri(workRoot: string, jobName: string): string {
  return joinUri(workRoot, `${jobName}/`);
}

/** The record that reserves a job name: created once, with a conditional write, and never removed. */
export const jobNameUri = (jobNamesRoot: string, jobName: string) => joinUri(jobNamesRoot, `${jobName}.json`);

/**
 * `s3://<work bucket>/models/`: where a deployed stack keeps the models made with CreateModel, beside
 * the jobs' work root (`s3://<work bucket>/jobs/`) and outside the prefix that expires.
 */
export function createdModelsRoot(workRoot: string): string {
  return workRoot.replace(/[^/]+\/$/, 'models/');
}

/** Where a model made with CreateModel on a deployed stack is kept (`createdModelsRoot`). */
export const createdModelUri = (modelsRoot: string, modelName: string) =>
  joinUri(modelsRoot, `${modelName}.json`);

export const planUri = (work: string) => joinUri(work, 'plan.json');
/** A partition's document, found from the plan's location (what a sidecar is told: PLAN_URI). */
export const partitionWorkUriOfPlan = (plan: string, partition: number) =>
  partitionWorkUri(plan.slice(0, plan.lastIndexOf('/') + 1), partition);
export const partitionItemsUri = (work: string) => joinUri(work, 'partition-items.json');
export const partitionWorkUri = (work: string, partition: number) =>
  joinUri(work, `partitions/${String(partition).padStart(5, '0')}.json`);
export const summaryUri = (work: string) => joinUri(work, 'summary.json');
export const progressUri = (work: string, partition: number) =>
  joinUri(work, `progress/${String(partition).padStart(5, '0')}.json`);
export const resultUri = (work: string, partition: number) =>
  joinUri(work, `results/${String(partition).padStart(5, '0')}.json`);
export const shardOutputUri = (work: string, relativeKey: string, shard: number) =>
  joinUri(work, `shards/${relativeKey}/${String(shard).padStart(5, '0')}${OUTPUT_SUFFIX}`);
export const shardErrorsUri = (work: string, relativeKey: string, shard: number) =>
  joinUri(work, `shards/${relativeKey}/${String(shard).padStart(5, '0')}${ERRORS_SUFFIX}`);
export const outputObjectUri = (outputPath: string, relativeKey: string) =>
  joinUri(outputPath, relativeKey + OUTPUT_SUFFIX);
export const errorsObjectUri = (outputPath: string, relativeKey: string) =>
  joinUri(outputPath, relativeKey + ERRORS_SUFFIX);

/**
 * A data capture manifest (DataCaptureConfig): `<destination>/input/` or `/output/`, then the job's
 * start hour in UTC as `yyyy/mm/dd/hh/` (SageMaker's documented layout), then `<jobName>.jsonl` (a
 * name of ours: SageMaker does not document it).
 */
export function captureManifestUri(
  destination: string,
  side: 'input' | 'output',
  startTime: Date,
  jobName: string,
): string {
  const two = (n: number) => String(n).padStart(2, '0');
  const hour = `${startTime.getUTCFullYear()}/${two(startTime.getUTCMonth() + 1)}/${two(startTime.getUTCDate())}/${two(startTime.getUTCHours())}`;
  return joinUri(destination, `${side}/${hour}/${jobName}.jsonl`);
}
