/**
 * The partition plan: the small contract between the plan stage (Lambda or local runner) and the
 * sidecars. Written as JSON to `<work>/plan.json`; each sidecar is told the plan URI and its
 * partition index by environment (PLAN_URI, PARTITION_INDEX) and reads only its own partition.
 *
 * An object is either processed whole by one partition or cut into byte-range shards, possibly on
 * several partitions. A shard [start, end) begins at the first record boundary after `start` (unless
 * start is 0) and ends at the first record boundary at or after `end`, so consecutive shards never
 * lose or duplicate a record. Shard outputs go to the work location and the assemble stage
 * concatenates them in shard order into the object's final `.out`.
 */

export const PLAN_VERSION = 1;

export interface PlannedObject {
  /** Full location of the input object. */
  readonly uri: string;
  /** Name relative to the input prefix's folder; the output is `<S3OutputPath>/<relativeKey>.out`. */
  readonly relativeKey: string;
  readonly size: number;
  /** Number of shards; 1 means processed whole. */
  readonly shardCount: number;
  /**
   * Set when the job named by `Plan.resumeFrom` completed this object and its output is in place:
   * no partition processes it, and it counts as done.
   */
  readonly completedEarlier?: true;
}

/** One unit of work for a sidecar: a whole object or one shard of it. */
export interface WorkItem {
  /** Index into Plan.objects. */
  readonly object: number;
  /** Shard index within the object (0 when whole). */
  readonly shard: number;
  /** Byte range [start, end); absent for a whole object. */
  readonly range?: { readonly start: number; readonly end: number };
}

export interface Partition {
  readonly index: number;
  readonly items: readonly WorkItem[];
  /** Bytes of input assigned, for balance. */
  readonly bytes: number;
}

/**
 * One partition's share of the plan, `<work>/partitions/<index>.json`: what its sidecar reads, so a
 * sidecar's download and memory follow its own work, not the job's. Each item carries its object;
 * `item.object` stays the object's index in the whole plan (results are reported by it).
 */
export interface PartitionWork {
  readonly version: typeof PLAN_VERSION;
  readonly jobName: string;
  /** The plan's `createdAt`: the job start time every partition shares (GenerateInferenceId). */
  readonly createdAt: string;
  readonly workUri: string;
  readonly outputUri: string;
  readonly index: number;
  readonly bytes: number;
  readonly items: ReadonlyArray<WorkItem & { readonly target: PlannedObject }>;
}

export interface Plan {
  readonly version: typeof PLAN_VERSION;
  readonly jobName: string;
  readonly createdAt: string;
  /** The job's work location (plan, shard outputs, progress, summary), ends with `/`. */
  readonly workUri: string;
  readonly outputUri: string;
  readonly objects: readonly PlannedObject[];
  readonly partitions: readonly Partition[];
  readonly totalBytes: number;
  /** Objects the listing found but the job does not process, each with the reason (nothing is skipped silently). */
  readonly skipped: ReadonlyArray<{ readonly uri: string; readonly reason: string }>;
  /** The earlier job (`Extensions.ResumeFrom`) whose completed objects this plan does not redo. */
  readonly resumeFrom?: string;
}
