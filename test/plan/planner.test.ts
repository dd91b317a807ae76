import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { validateRequest } from '../../src/job/validate';
import type { NormalizedJob } from '../../src/contract/job';
import { buildPlan, canShard } from '../../src/plan/planner';

const MiB = 1024 * 1024;

function job(
  overrides: {
    count?: number;
    split?: string;
    compression?: string;
    extensions?: Record<string, unknown>;
  } = {},
): NormalizedJob {
  return validateRequest(
    {
      TransformJobName: 'plan-test',
      ModelName: 'm',
      TransformInput: {
        DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: 's3://bucket/in/' } },
        ContentType: 'text/csv',
        SplitType: overrides.split ?? 'Line',
        CompressionType: overrides.compression ?? 'None',
      },
      TransformOutput: { S3OutputPath: 's3://bucket/out/' },
      TransformResources: { InstanceType: 'ml.m5.xlarge', InstanceCount: overrides.count ?? 4 },
      ...(overrides.extensions ? { Extensions: overrides.extensions } : {}),
    },
    {},
  );
}

const objects = (...sizes: number[]) =>
  sizes.map((size, i) => ({ uri: `s3://bucket/in/f${i}.csv`, relativeKey: `f${i}.csv`, size }));

describe('the partition plan', () => {
  it('cuts a lone object of any size into one shard per instance', () => {
    for (const count of [2, 3, 5, 7]) {
      for (const size of [300 * MiB + 1, 300 * MiB + 7, 301 * MiB - 3]) {
        const plan = buildPlan({
          job: job({ count, extensions: { ShardMinSizeInMB: 1 } }),
          objects: objects(size),
          workUri: 's3://w/j/',
        });
        expect(plan.objects[0]!.shardCount, `${size} bytes on ${count}`).toBe(count);
      }
    }
  });

  it('cuts one big file into shards so every instance gets work (SageMaker would leave three idle)', () => {
    const plan = buildPlan({ job: job({ count: 4 }), objects: objects(1024 * MiB), workUri: 's3://w/j/' });
    expect(plan.objects[0]!.shardCount).toBe(4);
    expect(plan.partitions).toHaveLength(4);
    for (const p of plan.partitions) expect(p.bytes).toBe(256 * MiB);
    const ranges = plan.partitions
      .flatMap((p) => p.items.map((i) => i.range!))
      .sort((a, b) => a.start - b.start);
    expect(ranges[0]!.start).toBe(0);
    expect(ranges.at(-1)!.end).toBe(1024 * MiB);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]!.start).toBe(ranges[i - 1]!.end);
  });

  it('cuts only at multiples of ShardMinSizeInMB, where every run closes a mini-batch (sharding never changes output)', () => {
    for (const [count, min, size] of [
      [3, 1, 10 * MiB + 12345],
      [7, 4, 301 * MiB - 3],
      [4, 64, 1000 * MiB + 1],
    ] as const) {
      const plan = buildPlan({
        job: job({ count, extensions: { ShardMinSizeInMB: min } }),
        objects: objects(size),
        workUri: 's3://w/j/',
      });
      const ranges = plan.partitions
        .flatMap((p) => p.items.map((i) => i.range!))
        .sort((a, b) => a.start - b.start);
      expect(ranges.length).toBe(plan.objects[0]!.shardCount);
      expect(ranges.length).toBeGreaterThan(1);
      for (const r of ranges.slice(1)) expect(r.start % (min * MiB)).toBe(0);
      for (let i = 1; i < ranges.length; i++) expect(ranges[i]!.start).toBe(ranges[i - 1]!.end);
      expect(ranges.at(-1)!.end).toBe(size);
    }
  });

  it('never cuts shards smaller than ShardMinSizeInMB', () => {
    const plan = buildPlan({
      job: job({ count: 8, extensions: { ShardMinSizeInMB: 64 } }),
      objects: objects(200 * MiB),
      workUri: 's3://w/j/',
    });
    expect(plan.objects[0]!.shardCount).toBe(3);
  });

  it.each([
    ['gzip input', { compression: 'Gzip' }],
    ['SplitType None', { split: 'None' }],
    ['TFRecord (no boundary can be found from an arbitrary offset)', { split: 'TFRecord' }],
    ['CSV with quoted newlines', { extensions: { CsvQuotedNewlines: true } }],
    ['CSV header handling', { extensions: { CsvHeader: 'Skip' } }],
    ['ShardMinSizeInMB 0', { extensions: { ShardMinSizeInMB: 0 } }],
  ])('does not shard %s', (_what, o) => {
    const j = job({ count: 4, ...(o as object) });
    expect(canShard(j)).toBe(false);
    const plan = buildPlan({ job: j, objects: objects(1024 * MiB), workUri: 's3://w/j/' });
    expect(plan.objects[0]!.shardCount).toBe(1);
    expect(plan.partitions).toHaveLength(1);
  });

  it('shards RecordIO objects', () => {
    expect(canShard(job({ split: 'RecordIO' }))).toBe(true);
  });

  it('uses no more partitions than there are work items', () => {
    const plan = buildPlan({ job: job({ count: 10 }), objects: objects(10, 20, 30), workUri: 's3://w/j/' });
    expect(plan.partitions).toHaveLength(3);
  });

  it("keeps each partition's items in input order", () => {
    const plan = buildPlan({
      job: job({ count: 2 }),
      objects: objects(5, 50, 1, 40, 3, 2),
      workUri: 's3://w/j/',
    });
    for (const p of plan.partitions) {
      const order = p.items.map((i) => i.object);
      expect(order).toEqual([...order].sort((a, b) => a - b));
    }
  });

  it('assigns every byte of the input exactly once, balanced within the largest item (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 300 * MiB }), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 12 }),
        (sizes, count) => {
          const plan = buildPlan({ job: job({ count }), objects: objects(...sizes), workUri: 's3://w/j/' });
          const total = sizes.reduce((a, b) => a + b, 0);
          expect(plan.totalBytes).toBe(total);
          expect(plan.partitions.reduce((s, p) => s + p.bytes, 0)).toBe(total);
          // Every object's items cover [0, size) without gaps or overlaps.
          const byObject = new Map<number, Array<{ start: number; end: number }>>();
          for (const p of plan.partitions)
            for (const item of p.items) {
              const o = plan.objects[item.object]!;
              const r = item.range ?? { start: 0, end: o.size };
              byObject.set(item.object, [...(byObject.get(item.object) ?? []), r]);
            }
          expect(byObject.size).toBe(sizes.length);
          for (const [i, ranges] of byObject) {
            ranges.sort((a, b) => a.start - b.start);
            expect(ranges.length).toBe(plan.objects[i]!.shardCount);
            expect(ranges[0]!.start).toBe(0);
            expect(ranges.at(-1)!.end).toBe(sizes[i]);
            for (let k = 1; k < ranges.length; k++) expect(ranges[k]!.start).toBe(ranges[k - 1]!.end);
          }
          // LPT: the busiest partition exceeds the fair share by at most one item.
          const largestItem = Math.max(
            ...plan.partitions.flatMap((p) =>
              p.items.map((it) => (it.range ? it.range.end - it.range.start : plan.objects[it.object]!.size)),
            ),
          );
          const busiest = Math.max(...plan.partitions.map((p) => p.bytes));
          expect(busiest).toBeLessThanOrEqual(Math.ceil(total / plan.partitions.length) + largestItem);
        },
      ),
      { numRuns: 200 },
    );
  });
});
