import type { NormalizedJob } from '../contract/job';
import { captureManifestUri, OUTPUT_SUFFIX } from '../contract/layout';
import type { Plan } from '../contract/plan';
import type { Storage } from '../storage/storage';
import { joinUri, prefixBase } from '../storage/uri';

/**
 * Batch data capture (DataCaptureConfig), as SageMaker documents it for batch transform
 * (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-batch.html): once the
 * job completes, `<DestinationS3Uri>/input/` and `/output/` each get a manifest, not a copy, naming
 * the job's input objects and their `.out` objects, under the `yyyy/mm/dd/hh/` of the job's start
 * time (UTC). A manifest is SageMaker's manifest format, `[{"prefix": "<uri>/"}, "<key>", …]`, on
 * one line: so it is one JSON Lines record, and also a manifest a ManifestFile input reads.
 * Returns the two manifests' locations.
 */
export async function writeCaptureManifests(
  job: NormalizedJob,
  plan: Plan,
  storage: Storage,
  startTime: Date,
): Promise<{ input: string; output: string }> {
  const capture = job.DataCaptureConfig;
  if (!capture) throw new Error('the job has no DataCaptureConfig');
  // Every object is its input's prefix (S3Prefix: the prefix's folder; ManifestFile: the manifest's
  // own prefix) followed by its relative key, so the prefix is what is left once that key is cut.
  const prefixes = new Set(plan.objects.map((o) => o.uri.slice(0, o.uri.length - o.relativeKey.length)));
  // A job with no objects still names its input's folder (for a manifest input, its own folder).
  if (prefixes.size === 0) prefixes.add(prefixBase(job.TransformInput.DataSource.S3DataSource.S3Uri));
  if (prefixes.size !== 1) {
    throw new Error(
      `the job's input objects do not share one prefix (${[...prefixes].slice(0, 3).join(', ')})`,
    );
  }
  const [inputPrefix] = prefixes as Set<string>;
  const keys = plan.objects.map((o) => o.relativeKey);
  const manifest = (prefix: string, entries: readonly string[]) =>
    `${JSON.stringify([{ prefix }, ...entries])}\n`;
  const opts = {
    contentType: 'application/jsonlines',
    ...(capture.KmsKeyId ? { kmsKeyId: capture.KmsKeyId } : {}),
  };
  const input = captureManifestUri(capture.DestinationS3Uri, 'input', startTime, job.TransformJobName);
  const output = captureManifestUri(capture.DestinationS3Uri, 'output', startTime, job.TransformJobName);
  await storage.put(input, manifest(inputPrefix!, keys), opts);
  await storage.put(
    output,
    manifest(
      joinUri(job.TransformOutput.S3OutputPath, ''),
      keys.map((k) => k + OUTPUT_SUFFIX),
    ),
    opts,
  );
  return { input, output };
}
