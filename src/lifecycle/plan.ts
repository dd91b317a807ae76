import type { NormalizedJob } from '../contract/job';
import type { Plan } from '../contract/plan';
import { partitionItemsUri, partitionWorkUri, planUri } from '../contract/layout';
import { buildPlan, partitionWorkOf } from '../plan/planner';
import type { Storage, StoredObject } from '../storage/storage';
import { parseLocation, prefixBase } from '../storage/uri';
import { JobValidationError } from '../job/problems';
import { captureDestinationProblem } from '../job/validate';
import { readStoredJob, writeCompactJson } from '../storage/json';
import type { JobRef, PlanRef } from '../contract/state';
import { listManifest, ManifestError } from './manifest';
import { objectsCompletedEarlier } from './resume';

/** A job whose input cannot be planned (nothing to read, a bad manifest, missing objects). */
export class PlanError extends Error {
  override readonly name = 'PlanError';
}

/**
 * The plan stage: lists the input, balances it over the job's instances (sharding big objects),
 * writes `<work>/plan.json` and returns only a small reference (state payloads are capped at 256 KB).
 */
export async function planStage(
  ref: JobRef,
  storage: Storage,
  opts: {
    /** A deployment's output locations; when given, a capture destination must lie under one. @default any */
    outputRoots?: readonly string[];
  } = {},
): Promise<PlanRef> {
  const { job, resumeFrom } = await readStoredJob(storage, ref.jobUri);
  // Refused before any task runs, not when Finalize is denied the write after the whole job ran.
  const captureProblem = opts.outputRoots && captureDestinationProblem(job, opts.outputRoots);
  if (captureProblem) throw new JobValidationError([captureProblem], job.TransformJobName);
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
  try {
    return { objects: await listManifest(job, storage), skipped };
  } catch (e) {
    // The plan's own error, so the job's failure reads the same for every input problem.
    if (e instanceof ManifestError) throw new PlanError(e.message);
    throw e;
  }
}
