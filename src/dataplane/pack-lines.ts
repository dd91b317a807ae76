import type { BatchStrategy, CsvHeaderMode } from '../contract/job';
import { MiniBatch, tooLarge } from './batch';
import { NEWLINE, sliceParts } from './chunks';
import { type LineScanner, lineScanner } from './line';
import type { ShardWindow } from './record';
import { nextGridPoint, shardReadStart } from './shard';

export interface LinePackOptions {
  readonly batchStrategy: BatchStrategy;
  /** Largest body in bytes; Infinity for no limit (SingleRecord only). */
  readonly maxBytes: number;
  readonly csvQuotedNewlines?: boolean;
  readonly window?: ShardWindow;
  /** What to do with the object's first line (only a read that starts at offset 0 sees it). */
  readonly csvHeader?: CsvHeaderMode;
  /** The header line for CsvHeader Repeat when the read does not start at offset 0 (a later shard). */
  readonly header?: Buffer;
  /** MultiRecord: close the open mini-batch at a line that starts at or after a multiple of this (see shardGridBytes). */
  readonly gridBytes?: number;
}

/**
 * Line records packed straight from the input chunks, with no object per record. A MultiRecord body
 * of `\n`-joined lines is exactly a byte range of the object, so a mini-batch is the run of whole
 * lines that fits, sliced out of the chunks it spans; per line the work is one indexOf, a compare
 * and a typed-array store, close to a bare newline scan. SingleRecord makes one mini-batch per line
 * from a subarray (a line spanning chunks is copied once).
 *
 * Synchronous: `feed` each chunk, then `end`; each returns the mini-batches it completed. Same
 * semantics as splitLines + packMiniBatches (the tests check that they agree).
 */
export class LineBatcher {
  /** The window's end was reached: stop reading. */
  stopped = false;
  private readonly scan: LineScanner;
  private readonly plain: boolean;
  private readonly max: number;
  private readonly single: boolean;
  private readonly stop: number;
  private readonly repeat: boolean;
  private seeking: boolean;
  private headerPending: boolean;
  private header: Buffer | undefined;
  private prefix: number;
  /** Absolute offset of the next chunk's first byte. */
  private pos: number;
  /** Chunks still needed (open batch, open line), the first starting at heldStart. */
  private held: Buffer[] = [];
  private heldStart: number;
  /** Start of the open (not yet terminated) line. */
  private recStart: number;
  /** Open MultiRecord batch: first line's start (-1: none), end of its last line, lines. */
  private batchStart = -1;
  private batchEnd = 0;
  private n = 0;
  private readonly grid: number | undefined;

  constructor(opts: LinePackOptions) {
    this.scan = lineScanner(opts.csvQuotedNewlines);
    this.grid = opts.gridBytes;
    this.plain = !opts.csvQuotedNewlines;
    this.max = opts.maxBytes;
    this.single = opts.batchStrategy === 'SingleRecord';
    this.stop = opts.window?.end ?? Number.POSITIVE_INFINITY;
    this.seeking = (opts.window?.start ?? 0) > 0;
    this.pos = opts.window ? shardReadStart('Line', opts.window) : 0;
    this.heldStart = this.recStart = this.pos;
    this.repeat = opts.csvHeader === 'Repeat';
    this.headerPending = !this.seeking && opts.csvHeader !== undefined && opts.csvHeader !== 'None';
    this.header = this.repeat ? opts.header : undefined;
    if (this.repeat && !this.header && !this.headerPending) {
      throw new Error('CsvHeader Repeat on a shard that does not start at 0 needs the header line');
    }
    this.prefix = this.header ? this.header.length + 1 : 0;
  }

  /**
   * Absolute offset of the first input byte the batcher still refers to: mini-batches it returns
   * from now on slice nothing before it. (Mini-batches already returned may, until they are done.)
   */
  get heldFrom(): number {
    return this.heldStart;
  }

  feed(chunk: Buffer): MiniBatch[] {
    const out: MiniBatch[] = [];
    if (this.stopped || chunk.length === 0) return out;
    const pos = this.pos;
    let i = 0;
    if (this.seeking) {
      const j = this.scan.next(chunk, 0);
      if (j < 0) {
        this.pos += chunk.length;
        return out;
      }
      this.seeking = false;
      i = j + 1;
      this.recStart = pos + i;
      this.held = [];
      this.heldStart = pos;
      if (this.recStart >= this.stop) {
        this.stopped = true;
        return out;
      }
    }
    this.held.push(chunk);
    if (this.headerPending) {
      const j = this.scan.next(chunk, i);
      if (j >= 0) {
        this.headerPending = false;
        if (this.repeat) {
          this.header = Buffer.from(this.bytes(this.recStart, pos + j));
          this.prefix = this.header.length + 1;
        }
        i = j + 1;
        this.recStart = pos + i;
      } else {
        i = chunk.length;
      }
    }
    if (!this.headerPending) {
      if (this.single) this.singles(chunk, i, out);
      else this.multi(chunk, i, out);
    }
    this.pos = pos + chunk.length;
    if (this.stopped) return out;
    // A line that cannot fit a body fails now, before it is buffered whole.
    if (this.prefix + this.pos - this.recStart > this.max) {
      throw tooLarge(this.recStart, this.pos - this.recStart, this.prefix, this.max);
    }
    const keepFrom = this.batchStart >= 0 ? this.batchStart : this.recStart;
    const held = this.held;
    let drop = 0;
    while (drop < held.length - 1 && this.heldStart + held[drop]!.length <= keepFrom) {
      this.heldStart += held[drop++]!.length;
    }
    if (drop > 0) held.splice(0, drop); // one splice, not a shift per chunk: a long line may span many chunks
    return out;
  }

  /** Call at the end of the input: the last line (without a trailing `\n`) and the open batch. */
  end(): MiniBatch[] {
    const out: MiniBatch[] = [];
    if (this.stopped || this.seeking) return out;
    const end = this.pos;
    if (this.recStart < end && !this.headerPending) {
      if (this.single) {
        out.push(this.singleBatch(this.bytes(this.recStart, end), this.recStart));
      } else {
        let { batchStart, n } = this;
        if (
          batchStart >= 0 &&
          (this.prefix + end - batchStart > this.max || this.recStart >= nextGridPoint(batchStart, this.grid))
        ) {
          out.push(this.cut(batchStart, this.batchEnd, n));
          batchStart = -1;
          n = 0;
        }
        if (batchStart < 0) batchStart = this.recStart;
        this.batchStart = batchStart;
        this.batchEnd = end;
        this.n = n + 1;
      }
    }
    if (!this.single && this.batchStart >= 0) out.push(this.cut(this.batchStart, this.batchEnd, this.n));
    this.batchStart = -1;
    this.stopped = true;
    return out;
  }

  private multi(chunk: Buffer, from: number, out: MiniBatch[]): void {
    const { scan, plain, max, prefix, stop, grid } = this;
    const pos = this.pos;
    let { recStart, batchStart, batchEnd, n } = this;
    // The open batch holds lines ending at or before limitEnd (-1 when none is open) and starting
    // before gridLimit.
    let limitEnd = batchStart < 0 ? -1 : batchStart + max - prefix;
    let gridLimit = batchStart < 0 ? -1 : nextGridPoint(batchStart, grid);
    let i = from;
    for (;;) {
      const j = plain ? chunk.indexOf(10, i) : scan.next(chunk, i);
      if (j < 0) break;
      const end = pos + j;
      if (end > limitEnd || recStart >= gridLimit) {
        // Close the open batch and start one at this line. A line too large alone still starts a
        // batch; cut() rejects it (a throw in this loop would cost it a fifth of its speed).
        if (n > 0) out.push(this.cut(batchStart, batchEnd, n));
        batchStart = recStart;
        limitEnd = recStart + max - prefix;
        gridLimit = nextGridPoint(recStart, grid);
        n = 0;
      }
      n++;
      batchEnd = end;
      i = j + 1;
      recStart = end + 1;
      if (recStart >= stop) {
        out.push(this.cut(batchStart, batchEnd, n));
        batchStart = -1;
        n = 0;
        this.stopped = true;
        break;
      }
    }
    this.recStart = recStart;
    this.batchStart = batchStart;
    this.batchEnd = batchEnd;
    this.n = n;
  }

  private singles(chunk: Buffer, from: number, out: MiniBatch[]): void {
    const { scan, stop } = this;
    const pos = this.pos;
    let recStart = this.recStart;
    let i = from;
    for (;;) {
      const j = scan.next(chunk, i);
      if (j < 0) break;
      const line = recStart >= pos ? chunk.subarray(recStart - pos, j) : this.bytes(recStart, pos + j);
      out.push(this.singleBatch(line, recStart));
      i = j + 1;
      recStart = pos + i;
      if (recStart >= stop) {
        this.stopped = true;
        break;
      }
    }
    this.recStart = recStart;
  }

  private singleBatch(line: Buffer, offset: number): MiniBatch {
    const { header, prefix } = this;
    if (prefix + line.length > this.max) throw tooLarge(offset, line.length, prefix, this.max);
    return new MiniBatch(header ? [header, NEWLINE, line] : [line], prefix + line.length, 1, offset, header);
  }

  private cut(batchStart: number, batchEnd: number, n: number): MiniBatch {
    const { header, prefix } = this;
    // Only a single line can overflow: a line that would overflow an open batch starts the next.
    if (prefix + batchEnd - batchStart > this.max)
      throw tooLarge(batchStart, batchEnd - batchStart, prefix, this.max);
    const body = sliceParts(this.held, batchStart - this.heldStart, batchEnd - this.heldStart);
    if (header) body.unshift(header, NEWLINE);
    // The body is a contiguous slice of the object: record positions are found again only if needed.
    const layout = n > 1 ? { sep: 1 as const, csvQuotedNewlines: !this.plain } : undefined;
    return new MiniBatch(body, prefix + batchEnd - batchStart, n, batchStart, header, layout);
  }

  /** Bytes [from, to) of the held chunks as one Buffer (a copy only when they span chunks). */
  private bytes(from: number, to: number): Buffer {
    const parts = sliceParts(this.held, from - this.heldStart, to - this.heldStart);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, to - from);
  }
}
