import { DataError } from './errors';
import { splitLines } from './line';
import { DataRecord, type SplitOptions } from './record';
import { RecordIOReader } from './recordio';
import { TFRecordReader } from './tfrecord';

/**
 * Records of one (decompressed) object, in order, as arrays of the records each input chunk
 * completes (arrays, not single records, keep the per-record cost of async iteration off the hot path).
 * Record payloads are subarrays of the input chunks; a record that spans chunks is copied once.
 * Errors are DataErrors naming the byte offset. An empty object has no records.
 */
export function splitRecords(
  source: AsyncIterable<Buffer>,
  opts: SplitOptions,
): AsyncGenerator<DataRecord[]> {
  switch (opts.splitType) {
    case 'Line':
      return splitLines(source, opts);
    case 'RecordIO':
      return drive(source, new RecordIOReader(opts));
    case 'TFRecord':
      return drive(source, new TFRecordReader(opts));
    case 'None':
      return splitNone(source, opts);
  }
}

interface FramedReader {
  push(chunk: Buffer): void;
  drain(eof: boolean): DataRecord[];
  readonly stopped: boolean;
}

async function* drive(source: AsyncIterable<Buffer>, reader: FramedReader): AsyncGenerator<DataRecord[]> {
  for await (const chunk of source) {
    reader.push(chunk);
    const out = reader.drain(false);
    if (out.length > 0) yield out;
    if (reader.stopped) return; // leaving the loop ends the source: stop reading past the window
  }
  const out = reader.drain(true);
  if (out.length > 0) yield out;
}

/** The whole object as one record. Streaming it unbuffered (MaxPayloadInMB 0) is readMiniBatches' job. */
async function* splitNone(source: AsyncIterable<Buffer>, opts: SplitOptions): AsyncGenerator<DataRecord[]> {
  if (opts.window) throw new Error('SplitType None objects cannot be sharded');
  const max = opts.maxRecordBytes ?? Number.POSITIVE_INFINITY;
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of source) {
    chunks.push(chunk);
    total += chunk.length;
    if (total > max) throw noneTooLarge(total, max);
  }
  if (total > 0) yield [new DataRecord(0, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total))];
}

function noneTooLarge(atLeast: number, max: number) {
  return new DataError(
    `the object is at least ${atLeast} bytes; with SplitType None it is one request and MaxPayloadInMB ` +
      `allows ${max} bytes (use MaxPayloadInMB 0 to stream it, or split it into records)`,
    0,
  );
}
