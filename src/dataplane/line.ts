import { oversizeRecordError } from './errors';
import { DataRecord, type SplitOptions } from './record';
import { shardReadStart } from './shard';

/**
 * Finds record-ending newlines, one chunk at a time; state (an open quote) carries across chunks.
 * Line records end at `\n`; the `\n` is not part of the record, a `\r` before it is (SageMaker splits
 * on `\n` only, and stripping would change the bytes a model sees).
 */
export interface LineScanner {
  /** Index of the next record-ending `\n` in `buf` at or after `from`, or -1 once `buf` has none. */
  next(buf: Buffer, from: number): number;
}

const plainScanner: LineScanner = { next: (buf, from) => buf.indexOf(10, from) };

/**
 * RFC 4180 aware: a `\n` inside a quoted field does not end the record. Every `"` toggles the quote
 * state, which also handles the escaped quote `""` (two toggles). Quotes are found with indexOf and the
 * position cached, so a quote-free chunk costs one extra scan, not one per line.
 */
class CsvLineScanner implements LineScanner {
  private inQuotes = false;
  private buf: Buffer | undefined;
  private from = 0;
  /** Next `"` at or after the last search point; -1 none; -2 not searched yet. */
  private quote = -2;

  next(buf: Buffer, from: number): number {
    if (buf !== this.buf || from < this.from) {
      this.buf = buf;
      this.quote = -2;
    }
    this.from = from;
    let i = from;
    for (;;) {
      if (this.quote === -2 || (this.quote >= 0 && this.quote < i)) this.quote = buf.indexOf(34, i);
      if (this.inQuotes) {
        if (this.quote < 0) return -1;
        this.inQuotes = false;
        i = this.quote + 1;
        continue;
      }
      const nl = buf.indexOf(10, i);
      if (this.quote < 0 || (nl >= 0 && nl < this.quote)) return nl;
      this.inQuotes = true;
      i = this.quote + 1;
    }
  }
}

export function lineScanner(csvQuotedNewlines = false): LineScanner {
  return csvQuotedNewlines ? new CsvLineScanner() : plainScanner;
}

/** Line records, in arrays of those completed by each chunk. An empty final segment after a trailing `\n` is not a record. */
export async function* splitLines(
  source: AsyncIterable<Buffer>,
  opts: SplitOptions,
): AsyncGenerator<DataRecord[]> {
  const scan = lineScanner(opts.csvQuotedNewlines);
  const max = opts.maxRecordBytes ?? Number.POSITIVE_INFINITY;
  const stop = opts.window?.end ?? Number.POSITIVE_INFINITY;
  /** Absolute offset of the current chunk's first byte. */
  let pos = opts.window ? shardReadStart('Line', opts.window) : 0;
  /** Looking for the first boundary of a window that does not start at 0 (the first byte read is start - 1). */
  let seeking = (opts.window?.start ?? 0) > 0;
  let recStart = pos;
  /** Earlier pieces of the open record when it spans chunks. */
  let pending: Buffer[] = [];
  let pendingLen = 0;

  for await (const chunk of source) {
    let i = 0;
    if (seeking) {
      const j = scan.next(chunk, 0);
      if (j < 0) {
        pos += chunk.length;
        continue;
      }
      seeking = false;
      i = j + 1;
      recStart = pos + i;
      if (recStart >= stop) return;
    }
    const out: DataRecord[] = [];
    for (;;) {
      const j = scan.next(chunk, i);
      if (j < 0) break;
      let line: Buffer;
      if (pendingLen === 0) {
        line = chunk.subarray(i, j);
      } else {
        pending.push(chunk.subarray(0, j));
        line = Buffer.concat(pending, pendingLen + j);
        pending = [];
        pendingLen = 0;
      }
      if (line.length > max) throw oversizeRecordError(recStart, line.length, max);
      out.push(new DataRecord(recStart, line));
      i = j + 1;
      recStart = pos + i;
      if (recStart >= stop) {
        if (out.length > 0) yield out;
        return;
      }
    }
    if (i < chunk.length) {
      pending.push(i === 0 ? chunk : chunk.subarray(i));
      pendingLen += chunk.length - i;
      if (pendingLen > max) throw oversizeRecordError(recStart, pendingLen, max, true);
    }
    pos += chunk.length;
    if (out.length > 0) yield out;
  }
  if (pendingLen > 0) yield [new DataRecord(recStart, Buffer.concat(pending, pendingLen))];
}
