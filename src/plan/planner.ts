import { shardGridBytes } from '../dataplane/shard';
import type { NormalizedJob } from '../contract/job';
import type { StoredObject } from '../storage/storage';
import {
  type Partition,
  type PartitionWork,
  PLAN_VERSION,
  type Plan,
  type PlannedObject,
  type WorkItem,
} from '../contract/plan';

const MiB = 1024 * 1024;

export interface PlanInput {
  readonly job: NormalizedJob;
  /** Input objects, in listing order, with their names relative to the input prefix's folder. */
  readonly objects: ReadonlyArray<StoredObject & { readonly relativeKey: string }>;
  readonly workUri: string;
  readonly skipped?: Plan['skipped'];
  /**
   * Indexes into `objects` that the earlier job named by `resumeFrom` completed, with their outputs
   * in place: planned as done, given to no partition.
   */
  readonly completedEarlier?: ReadonlySet<number>;
  readonly resumeFrom?: string;
  readonly now?: Date;
}

/**
 * Where this job's objects may be cut into byte-range shards: at multiples of the returned size, or
 * nowhere (undefined). The data plane must be able to find record boundaries from any offset
 * (`shardable`), CSV header handling needs each object's first line (so it keeps objects whole), and
 * the cuts sit on the grid the data plane closes mini-batches on, so sharding never changes an output
 * byte (`shardGridBytes`).
 */
export function shardGrid(job: NormalizedJob): number | undefined {
  const { SplitType, CompressionType } = job.TransformInput;
  return shardGridBytes({
    splitType: SplitType,
    compressionType: CompressionType,
    csvQuotedNewlines: job.Extensions.CsvQuotedNewlines,
    csvHeader: job.Extensions.CsvHeader,
    shardMinSizeInMB: job.Extensions.ShardMinSizeInMB,
  });
}

export function canShard(job: NormalizedJob): boolean {
  return shardGrid(job) !== undefined;
}

/**
 * Assigns the input to `InstanceCount` partitions balanced by bytes. Objects bigger than a fair
 * share are cut into shards (at least about ShardMinSizeInMB, cut on its grid) so one big file keeps every worker
 * busy, where SageMaker would leave all but one instance idle. Items are placed largest first on the
 * least-loaded partition (LPT), then each partition keeps its items in input order so outputs
 * appear in a predictable order.
 */
export function buildPlan({
  job,
  objects,
  workUri,
  skipped = [],
  completedEarlier = new Set(),
  resumeFrom,
  now = new Date(),
}: PlanInput): Plan {
  const workers = job.TransformResources.InstanceCount;
  // The bytes to process: objects completed earlier take no worker's time.
  const totalBytes = objects.reduce((s, o, i) => (completedEarlier.has(i) ? s : s + o.size), 0);
  // Not rounded up: an object that is the whole input must come out as `workers` shards.
  const fairShare = totalBytes / workers;
  const minShard = job.Extensions.ShardMinSizeInMB * MiB;
  const grid = shardGrid(job);
  const shardable = grid !== undefined && workers > 1;

  const planned: PlannedObject[] = [];
  const items: Array<WorkItem & { bytes: number; order: number }> = [];
  objects.forEach((o, objectIndex) => {
    if (completedEarlier.has(objectIndex)) {
      planned.push({
        uri: o.uri,
        relativeKey: o.relativeKey,
        size: o.size,
        shardCount: 1,
        completedEarlier: true,
      });
      return;
    }
    const shardSize = Math.max(fairShare, minShard);
    // Shards are at least a fair share and at least ShardMinSizeInMB, and never more than the workers.
    const shardCount = shardable ? Math.max(1, Math.min(Math.floor(o.size / shardSize + 1e-9), workers)) : 1;
    planned.push({ uri: o.uri, relativeKey: o.relativeKey, size: o.size, shardCount });
    if (shardCount === 1) {
      items.push({ object: objectIndex, shard: 0, bytes: o.size, order: items.length });
      return;
    }
    // Each cut is the even cut rounded to the grid (a multiple of ShardMinSizeInMB): shards stay
    // within half a grid step of even, and distinct, since an even share is at least one step.
    const cut = (s: number) =>
      s === shardCount ? o.size : Math.round((o.size * s) / shardCount / grid!) * grid!;
    for (let s = 0; s < shardCount; s++) {
      const start = cut(s);
      const end = cut(s + 1);
      items.push({
        object: objectIndex,
        shard: s,
        range: { start, end },
        bytes: end - start,
        order: items.length,
      });
    }
  });

  const partitionCount = Math.max(1, Math.min(workers, items.length));
  const loads = Array.from({ length: partitionCount }, (_, index) => ({
    index,
    bytes: 0,
    items: [] as typeof items,
  }));
  for (const item of [...items].sort((a, b) => b.bytes - a.bytes || a.order - b.order)) {
    let target = loads[0]!;
    for (const l of loads) if (l.bytes < target.bytes) target = l;
    target.items.push(item);
    target.bytes += item.bytes;
  }
  const partitions: Partition[] = loads.map((l) => ({
    index: l.index,
    bytes: l.bytes,
    items: l.items
      .sort((a, b) => a.order - b.order)
      .map(({ object, shard, range }) => ({ object, shard, ...(range ? { range } : {}) })),
  }));

  return {
    version: PLAN_VERSION,
    jobName: job.TransformJobName,
    createdAt: now.toISOString(),
    workUri,
    outputUri: job.TransformOutput.S3OutputPath,
    objects: planned,
    partitions,
    totalBytes,
    skipped,
    ...(resumeFrom !== undefined ? { resumeFrom } : {}),
  };
}

/** The document for one partition of `plan`. */
export function partitionWorkOf(plan: Plan, partition: Partition): PartitionWork {
  return {
    version: plan.version,
    jobName: plan.jobName,
    createdAt: plan.createdAt,
    workUri: plan.workUri,
    outputUri: plan.outputUri,
    index: partition.index,
    bytes: partition.bytes,
    items: partition.items.map((item) => ({ ...item, target: plan.objects[item.object]! })),
  };
}
