import type { CompressionType, SplitType } from '../contract/job';
import type { ShardWindow } from './record';

/**
 * Shard windows. A shard [start, end) of an object processes exactly the records whose start
 * offset r satisfies firstBoundary(start) <= r < firstBoundary(end), where firstBoundary(x) is the
 * smallest record start >= x (firstBoundary(0) = 0). Consecutive windows therefore neither lose
 * nor duplicate a record, wherever the plan cuts.
 *
 * Line: a record starts at 0 and after every `\n`. Reading from start - 1 shows whether `start`
 * itself is a boundary (the byte before it is `\n`) without a second request.
 * RecordIO: records start at 4-byte-aligned offsets holding the magic with cflag 0 or 1 (dmlc's
 * writer splits a record around any aligned magic in its data, exactly so readers can do this).
 */

/** Whether objects of this kind can be cut into byte-range shards. */
export function shardable(o: {
  readonly splitType: SplitType;
  readonly compressionType?: CompressionType;
  readonly csvQuotedNewlines?: boolean;
}): boolean {
  if (o.compressionType === 'Gzip') return false; // a gzip stream cannot be entered mid-way
  if (o.splitType === 'Line') return !o.csvQuotedNewlines; // quote state is unknowable mid-file
  return o.splitType === 'RecordIO';
}

/**
 * Shard cuts and mini-batch boundaries on one grid, so that sharding never changes an output byte.
 * The planner cuts an object only at multiples of `gridBytes`, and every MultiRecord packer, sharded
 * or not, closes its open mini-batch at the first record that starts at or after the next multiple.
 * A run on one instance therefore sends exactly the mini-batches a run on many sends (with
 * AssembleWith None, a model's answer to `a\nb` is not its answers to `a` and `b` concatenated; a
 * model that answers per mini-batch differs under Line too). The cost is one shorter mini-batch per
 * grid step (ShardMinSizeInMB, 64 MiB by default).
 */
export function shardGridBytes(o: {
  readonly splitType: SplitType;
  readonly compressionType?: CompressionType;
  readonly csvQuotedNewlines?: boolean;
  readonly csvHeader?: string;
  readonly shardMinSizeInMB: number;
}): number | undefined {
  if (o.shardMinSizeInMB <= 0 || (o.csvHeader !== undefined && o.csvHeader !== 'None')) return undefined;
  return shardable(o) ? o.shardMinSizeInMB * 1_048_576 : undefined;
}

/** The first multiple of `grid` after `offset` (Infinity without a grid). */
export function nextGridPoint(offset: number, grid: number | undefined): number {
  return grid === undefined ? Number.POSITIVE_INFINITY : (Math.floor(offset / grid) + 1) * grid;
}

/** The absolute offset a shard must start reading the object at (it reads on to the end of the object). */
export function shardReadStart(splitType: SplitType, window: ShardWindow): number {
  if (window.start <= 0) return 0;
  switch (splitType) {
    case 'Line':
      return window.start - 1;
    case 'RecordIO':
      return Math.ceil(window.start / 4) * 4;
    default:
      throw new Error(`SplitType ${splitType} objects cannot be sharded`);
  }
}
