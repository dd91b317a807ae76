import type { NormalizedJob } from '../contract/job';
import type { Plan } from '../contract/plan';
import { partitionItemsUri, partitionWorkUri, planUri } from '../contract/layout';
import { buildPlan, partitionWorkOf } from '../plan/planner';
import type { Storage, StoredObject } from '../storage/storage';
import { locationProblem, locationsOverlap, parseLocation, prefixBase } from '../storage/uri';
import { readStoredJob, writeCompactJson } from '../storage/json';
import type { JobRef, PlanRef } from '../contract/state';
import { objectsCompletedEarlier } from './resume';

/** A job whose input cannot be planned (nothing to read, a bad manifest, missing objects). */
export class PlanError extends Error {
  override readonly name = 'PlanError';
}

/** HEAD requests in flight while checking a manifest's objects. */
const MANIFEST_HEAD_CONCURRENCY = 16;

/**
 * The plan stage: lists the input, balances it over the job's instances (sharding big objects),
 * writes `<work>/plan.json` and returns only a small reference (state payloads are capped at 256 KB).
 */
export async function planStage(ref: JobRef, storage: Storage): Promise<PlanRef> {
  const { job, resumeFrom } = await readStoredJob(storage, ref.jobUri);
  const { objects, skipped } = await listInput(job, storage);
  if (objects.length === 0) {
    const where = job.TransformInput.DataSource.S3DataSource.S3Uri;
    throw new PlanError(
      `Transform job "${job.TransformJobName}" has no input: ${where} ${skipped.length ? `holds only ${skipped.length} object(s) that cannot be processed (${skipped[0]!.reason})` : 'matched no objects'}`,
    );
  }
  const completedEarlier = resumeFrom
    ? await objectsCompletedEarlier(storage, resumeFrom.workUri, job.TransformOutput.S3OutputPath, objects)
    : undefined;
  const plan = buildPlan({
    job,
    objects,
    workUri: ref.workUri,
    skipped,
    ...(resumeFrom ? { completedEarlier, resumeFrom: resumeFrom.jobName } : {}),
  });
  return writePlan(storage, plan);
}

/** Partition documents written at once by the plan stage. */
const PARTITION_WRITE_CONCURRENCY = 16;

/**
 * Writes the plan's documents: one per partition (all a sidecar reads), the items the Distributed
 * Map reads, and the whole plan last (the stages that follow read it; its presence means the rest
 * is written). Compact JSON: at a million objects, pretty-printing adds a third to the bytes.
 */
export async function writePlan(storage: Storage, plan: Plan): Promise<PlanRef> {
  let next = 0;
  const writeOne = async () => {
    while (next < plan.partitions.length) {
      const partition = plan.partitions[next++]!;
      await writeCompactJson(
        storage,
        partitionWorkUri(plan.workUri, partition.index),
        partitionWorkOf(plan, partition),
      );
    }
  };
  await Promise.all(Array.from({ length: PARTITION_WRITE_CONCURRENCY }, writeOne));
  const items = plan.partitions.map((p) => ({ index: p.index }));
  const itemsUri = partitionItemsUri(plan.workUri);
  await writeCompactJson(storage, itemsUri, items);
  const uri = planUri(plan.workUri);
  await writeCompactJson(storage, uri, plan);
  const location = parseLocation(itemsUri);
  return {
    ...summarize(plan, uri),
    ...(location.scheme === 's3' ? { partitionItemsKey: location.key } : {}),
  };
}

export function summarize(plan: Plan, uri: string): PlanRef {
  return {
    planUri: uri,
    partitions: plan.partitions.map((p) => ({ index: p.index })),
    objectCount: plan.objects.length,
    ...(plan.resumeFrom !== undefined
      ? { completedEarlierCount: plan.objects.filter((o) => o.completedEarlier).length }
      : {}),
    shardedObjectCount: plan.objects.filter((o) => o.shardCount > 1).length,
    totalBytes: plan.totalBytes,
  };
}

type Listed = StoredObject & { relativeKey: string };

export async function listInput(
  job: NormalizedJob,
  storage: Storage,
): Promise<{ objects: Listed[]; skipped: Array<{ uri: string; reason: string }> }> {
  const { S3DataType, S3Uri } = job.TransformInput.DataSource.S3DataSource;
  const objects: Listed[] = [];
  const skipped: Array<{ uri: string; reason: string }> = [];
  if (S3DataType === 'S3Prefix') {
    const base = prefixBase(S3Uri);
    for await (const o of storage.list(S3Uri)) {
      // A zero-byte key ending in `/` is the S3 console's "folder"; it holds no records.
      if (o.uri.endsWith('/') && o.size === 0) {
        skipped.push({ uri: o.uri, reason: 'folder marker (a zero-byte key ending in /)' });
        continue;
      }
      objects.push({ ...o, relativeKey: o.uri.slice(base.length) });
    }
    return { objects, skipped };
  }
  return listManifest(job, storage);
}

/**
 * A manifest is a JSON array: `[{"prefix": "s3://bucket/p/"}, "key1", "sub/key2", …]`; each object is
 * the prefix and the entry concatenated as strings, as in SageMaker's TransformS3DataSource.S3Uri docs
 * (research/sagemaker.md Q10): `s3://b/in` + `a.csv` is `s3://b/ina.csv`. Every listed object must
 * exist; missing ones are named in the error.
 */
async function listManifest(job: NormalizedJob, storage: Storage) {
  const manifestUri = job.TransformInput.DataSource.S3DataSource.S3Uri;
  let manifest: unknown;
  try {
    manifest = JSON.parse((await storage.readAll(manifestUri)).toString('utf8'));
  } catch (e) {
    throw new PlanError(`manifest ${manifestUri} cannot be read as JSON: ${(e as Error).message}`);
  }
  const head = Array.isArray(manifest) ? manifest[0] : undefined;
  const prefix =
    typeof head === 'object' && head !== null ? (head as { prefix?: unknown }).prefix : undefined;
  if (!Array.isArray(manifest) || typeof prefix !== 'string') {
    throw new PlanError(
      `manifest ${manifestUri} must be a JSON array whose first element is {"prefix": "s3://bucket/prefix/"}`,
    );
  }
  const problem = locationProblem(prefix);
  if (problem) throw new PlanError(`manifest ${manifestUri}: prefix "${prefix}": ${problem}`);
  if (locationsOverlap(prefix, job.TransformOutput.S3OutputPath)) {
    throw new PlanError(
      `manifest ${manifestUri}: its prefix "${prefix}" overlaps the output location ${job.TransformOutput.S3OutputPath}`,
    );
  }
  const keys = manifest.slice(1);
  const bad = keys.findIndex((k) => typeof k !== 'string' || k.length === 0);
  if (bad !== -1)
    throw new PlanError(`manifest ${manifestUri}: element ${bad + 1} must be a non-empty key string`);

  const objects: Listed[] = new Array(keys.length);
  const missing: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const i = next++;
      // SageMaker's manifest names `prefix` + entry, concatenated as strings (no `/` inserted).
      const uri = prefix + (keys[i] as string);
      const found = await storage.head(uri);
      if (!found) missing.push(uri);
      else objects[i] = { uri, size: found.size, relativeKey: keys[i] as string };
    }
  };
  await Promise.all(Array.from({ length: Math.min(MANIFEST_HEAD_CONCURRENCY, keys.length) }, worker));
  if (missing.length > 0) {
    throw new PlanError(
      `manifest ${manifestUri} lists ${missing.length} object(s) that do not exist: ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}`,
    );
  }
  return { objects, skipped: [] as Array<{ uri: string; reason: string }> };
}
