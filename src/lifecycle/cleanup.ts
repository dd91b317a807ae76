import type { Plan } from '../contract/plan';
import { errorsObjectUri, outputObjectUri, planUri } from '../contract/layout';
import type { Storage } from '../storage/storage';
import { joinUri } from '../storage/uri';
import { readJsonIfExists } from '../storage/json';
import type { CleanupReport, CleanupTarget, JobRef } from '../contract/state';
import type { StoredJob } from '../contract/job';

/** Stops the ECS tasks of a job (cleanup of a stopped execution). One small interface so tests can stand in for ECS. */
export interface TaskControl {
  stopJobTasks(jobName: string, reason: string): Promise<number>;
}

/**
 * The cleanup stage, run on success, on every failure path and (through an EventBridge rule) after a
 * stopped or timed-out execution: stops the job's tasks, aborts its incomplete multipart uploads and
 * removes its scratch shard outputs. Keeps job.json, plan.json, progress, results and the summary so
 * `describe` keeps working (the work location expires by lifecycle rule). Safe to run twice.
 */
export async function cleanupStage(
  target: CleanupTarget,
  storage: Storage,
  tasks?: TaskControl,
): Promise<CleanupReport> {
  const stoppedTasks = tasks ? await tasks.stopJobTasks(target.jobName, 'transform job cleanup') : 0;

  // Only this job's uploads: everything under its work location, and under the output location
  // only the keys this job's plan would write (another job may be writing beside it).
  const plan = await readJsonIfExists<Plan>(storage, planUri(target.workUri));
  const ours = new Set<string>();
  for (const o of plan?.objects ?? []) {
    ours.add(outputObjectUri(target.outputUri, o.relativeKey));
    ours.add(errorsObjectUri(target.outputUri, o.relativeKey));
  }
  let abortedUploads = 0;
  const notChecked: string[] = [];
  for (const [prefix, keep] of [
    [target.workUri, () => true],
    [target.outputUri, (uri: string) => ours.has(uri)],
  ] as const) {
    try {
      abortedUploads += await forEachConcurrently(storage.listIncompleteUploads(prefix), async (upload) => {
        if (!keep(upload.uri)) return false;
        await storage.abortIncompleteUpload(upload);
        return true;
      });
    } catch (e) {
      // Some S3-compatible servers do not implement ListMultipartUploads: the job's result stands,
      // and the report says what was left unchecked (the bucket's lifecycle rule is the backstop).
      if (!isNotImplemented(e)) throw e;
      notChecked.push(
        `incomplete uploads under ${prefix} were not checked: the storage does not list multipart uploads (${(e as Error).message})`,
      );
    }
  }

  // A listing page at a time, in one DeleteObjects each (deleting what was listed does not disturb
  // the listing's cursor, which is past those keys).
  let deletedScratchObjects = 0;
  let batch: string[] = [];
  const flush = async () => {
    await storage.deleteMany(batch);
    deletedScratchObjects += batch.length;
    batch = [];
  };
  for await (const o of storage.list(joinUri(target.workUri, 'shards/'))) {
    batch.push(o.uri);
    if (batch.length >= SCRATCH_DELETE_BATCH) await flush();
  }
  if (batch.length > 0) await flush();
  return {
    abortedUploads,
    deletedScratchObjects,
    stoppedTasks,
    ...(notChecked.length > 0 ? { notChecked } : {}),
  };
}

/** What removing a stopped job's outputs did. */
export interface StoppedOutputsReport {
  readonly removedOutputs: number;
  /** Why outputs were left in place (KeepOutputsOnStop, or a store that gives no write times). */
  readonly kept?: string;
}

/**
 * A stopped job stores no output: "When you stop a batch transform job before it is completed,
 * Amazon SageMaker doesn't store the job's output in Amazon S3" (API_StopTransformJob). Removes the
 * `<key>.out` and `<key>.errors.jsonl` of the job's planned objects that this job wrote, told by
 * their write time (at or after the job's creation), so an output an earlier job left at the same
 * key, and every other file, stays. Opt out with Extensions.KeepOutputsOnStop. Call it once the
 * job's workers have stopped. Safe to run twice.
 */
export async function removeStoppedJobOutputs(
  ref: Pick<JobRef, 'jobUri' | 'workUri' | 'outputUri' | 'creationTime'>,
  storage: Storage,
): Promise<StoppedOutputsReport> {
  const stored = await readJsonIfExists<StoredJob>(storage, ref.jobUri);
  if (stored?.job.Extensions.KeepOutputsOnStop) {
    return { removedOutputs: 0, kept: 'Extensions.KeepOutputsOnStop is set' };
  }
  const plan = await readJsonIfExists<Plan>(storage, planUri(ref.workUri));
  const since = Date.parse(stored?.creationTime ?? ref.creationTime);
  let undated = 0;
  async function* candidates() {
    for (const o of plan?.objects ?? []) {
      yield outputObjectUri(ref.outputUri, o.relativeKey);
      yield errorsObjectUri(ref.outputUri, o.relativeKey);
    }
  }
  const removedOutputs = await forEachConcurrently(candidates(), async (uri) => {
    const head = await storage.head(uri);
    if (!head) return false;
    if (!head.lastModified) {
      undated++;
      return false;
    }
    if (head.lastModified.getTime() < since) return false; // written before this job existed
    await storage.delete(uri);
    return true;
  });
  return {
    removedOutputs,
    ...(undated > 0
      ? {
          kept: `${undated} output(s) were kept: the storage gives no write time to tell this job's from others'`,
        }
      : {}),
  };
}

/** S3's answer for an API a server does not have (HTTP 501, `NotImplemented`). */
function isNotImplemented(e: unknown): boolean {
  const err = e as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return (
    err?.name === 'NotImplemented' || err?.Code === 'NotImplemented' || err?.$metadata?.httpStatusCode === 501
  );
}

/**
 * Aborts cleanup keeps in flight. One request at a time, cleanup of a job of 10,000 sharded objects
 * took 26 s on the loopback S3 server (`npm run scale`), and S3's own latency is higher; 32 at once
 * stays far below S3's 3,500 writes per second per prefix.
 */
const CLEANUP_CONCURRENCY = 32;
/** Scratch objects per DeleteObjects (S3 takes at most 1,000). */
const SCRATCH_DELETE_BATCH = 1000;

/** Runs `fn` over a listing with CLEANUP_CONCURRENCY calls in flight; counts the calls that returned true. */
async function forEachConcurrently<T>(items: AsyncIterable<T>, fn: (item: T) => Promise<boolean>) {
  const running = new Set<Promise<void>>();
  let count = 0;
  let failure: unknown;
  for await (const item of items) {
    if (failure !== undefined) break;
    const p: Promise<void> = fn(item).then(
      (done) => {
        if (done) count++;
      },
      (err) => {
        failure ??= err;
      },
    );
    running.add(p);
    void p.finally(() => running.delete(p));
    if (running.size >= CLEANUP_CONCURRENCY) await Promise.race(running);
  }
  await Promise.all(running);
  if (failure !== undefined) throw failure;
  return count;
}
