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
