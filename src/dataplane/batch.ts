import { appendLine, appendPart, joinParts, NEWLINE, sliceParts } from './chunks';
import { DataError, oversizeRecordError } from './errors';
import { lineScanner } from './line';
import type { DataRecord } from './record';
import { nextGridPoint } from './shard';

/** How the records sit in a MiniBatch body (absent for a single bare record). */
export interface BatchLayout {
  /** Bytes between records in the body: 1 for Line MultiRecord (`\n`), else 0. */
  readonly sep: 0 | 1;
  /**
   * Where each record starts in the body, counted after the header. When absent for a Line batch,
   * found again by scanning the body for its `\n`s, only if someone asks (bisecting, joining):
   * the packer's hot loop then does no per-line store.
   */
  starts?: Int32Array;
  /** Absolute offset of each record; absent when the body is a contiguous slice of the object (record i is then at firstOffset + starts[i]). */
  readonly offsets?: Float64Array;
  /** The records as read, when an InputFilter changed what the body holds (for JoinSource Input). */
  readonly inputs?: readonly Buffer[];
  /** The records were split with CsvQuotedNewlines (a quoted `\n` does not separate records). */
  readonly csvQuotedNewlines?: boolean;
}

const SINGLE: BatchLayout = { sep: 0 };

/**
 * One request body's worth of consecutive records of one object, and enough bookkeeping to split it
 * in two (the sidecar halves a batch on HTTP 413 or a timeout, down to single records) and to match
 * a response back to its records.
 *
 * The body is kept as `parts`, slices of the input chunks in order, so packing copies nothing;
 * send them as they are (an iterable request body with Content-Length = byteLength), or use `body`.
 */
export class MiniBatch {
  readonly streamed = false;
  private joined: Buffer | undefined;

  constructor(
    /** The request body, in order. */
    readonly parts: readonly Buffer[],
    readonly byteLength: number,
    /** Records in the body (a repeated CSV header is not one). */
    readonly count: number,
    /** Absolute byte offset of the first record in the decompressed object. */
    readonly firstOffset: number,
    /** CSV header line sent first (CsvHeader Repeat), followed by `\n`. */
    readonly header?: Buffer,
    private readonly layout: BatchLayout = SINGLE,
  ) {}

  /** The body as one Buffer (concatenated on first use when it has several parts). */
  get body(): Buffer {
    this.joined ??= joinParts(this.parts, this.byteLength);
    return this.joined;
  }

  /**
   * Whether the last record is empty (an empty Line record). In a `\n`-joined body it shows only as a
   * final `\n` (or as an empty body), so a response's final `\n` may be the model's answer to it rather
   * than a line end: the output processor counts lines for such batches (see output.ts).
   */
  get endsWithEmptyRecord(): boolean {
    if (this.byteLength === this.prefixLength) return true;
    const last = this.parts[this.parts.length - 1];
    if (last === undefined || last[last.length - 1] !== 10) return false;
    return this.recordStart(this.count - 1) === this.byteLength;
  }

  /** Absolute byte offset of record `i` (framing included). */
  recordOffset(i: number): number {
    if (i === 0) return this.firstOffset;
    const { offsets } = this.layout;
    return offsets ? offsets[i]! : this.firstOffset + this.starts()[i]!;
  }

  /** The bytes of record `i` as the body holds them (framed for RecordIO/TFRecord MultiRecord). */
  record(i: number): Buffer {
    return joinParts(sliceParts(this.parts, this.recordStart(i), this.recordEnd(i)));
  }

  /** Record `i` as read from the object, before any InputFilter. */
  input(i: number): Buffer {
    const { inputs } = this.layout;
    return inputs ? inputs[i]! : this.record(i);
  }

  /**
   * Splits the batch into two batches of ⌈count/2⌉ and ⌊count/2⌋ records, with the same framing
   * rules (and the CSV header repeated in both). Copies no record bytes.
   */
  split(): [MiniBatch, MiniBatch] {
    if (this.count < 2) throw new Error('a single-record batch cannot be split');
    const mid = Math.ceil(this.count / 2);
    return [this.range(0, mid), this.range(mid, this.count)];
  }

  private get prefixLength(): number {
    return this.header ? this.header.length + 1 : 0;
  }

  private recordStart(i: number): number {
    return this.prefixLength + (i === 0 ? 0 : this.starts()[i]!);
  }

  private recordEnd(i: number): number {
    return i + 1 < this.count ? this.recordStart(i + 1) - this.layout.sep : this.byteLength;
  }

  /** Record starts after the header, found by scanning the body on first use when the packer did not keep them. */
  private starts(): Int32Array {
    const layout = this.layout;
    if (layout.starts) return layout.starts;
    const starts = new Int32Array(this.count);
    const scan = lineScanner(layout.csvQuotedNewlines);
    const prefix = this.prefixLength;
    let at = 0;
    let n = 1;
    for (const part of sliceParts(this.parts, prefix, this.byteLength)) {
      for (let j = scan.next(part, 0); j >= 0 && n < this.count; j = scan.next(part, j + 1))
        starts[n++] = at + j + 1;
      at += part.length;
    }
    layout.starts = starts;
    return starts;
  }

  private range(a: number, b: number): MiniBatch {
    const { sep, offsets, inputs, csvQuotedNewlines } = this.layout;
    const from = this.recordStart(a);
    const to = this.recordEnd(b - 1);
    const parts = sliceParts(this.parts, from, to);
    if (this.header) parts.unshift(this.header, NEWLINE);
    const n = b - a;
    let layout = SINGLE;
    if (n > 1) {
      const all = this.starts();
      const base = all[a]!;
      const starts = all.slice(a, b);
      for (let k = 0; k < n; k++) starts[k]! -= base;
      layout = {
        sep,
        starts,
        offsets: offsets?.subarray(a, b),
        inputs: inputs?.slice(a, b),
        csvQuotedNewlines,
      };
    } else if (inputs) {
      layout = { sep: 0, inputs: inputs.slice(a, b) };
    }
    return new MiniBatch(parts, this.prefixLength + to - from, n, this.recordOffset(a), this.header, layout);
  }
}

/** A whole object sent as one streamed request body (SplitType None with MaxPayloadInMB 0). */
export class StreamedMiniBatch {
  readonly streamed = true;
  readonly count = 1;
  readonly firstOffset = 0;

  constructor(
    /** The object's (decompressed) bytes; can be iterated once. */
    readonly body: AsyncIterable<Buffer>,
  ) {}
}

export type Invocation = MiniBatch | StreamedMiniBatch;

export interface PackOptions {
  readonly batchStrategy: 'SingleRecord' | 'MultiRecord';
  /** Largest body in bytes (MaxPayloadInMB × 1 MiB); Infinity for no limit. */
  readonly maxBytes: number;
  /** Line records are `\n`-joined in MultiRecord bodies; RecordIO/TFRecord keep their framing. */
  readonly lineJoined: boolean;
  /** CSV header line to send first in every body (CsvHeader Repeat). */
  readonly header?: Buffer;
  /** MultiRecord: close the open mini-batch at a record that starts at or after a multiple of this (see shardGridBytes). */
  readonly gridBytes?: number;
}

/**
 * Packs records into mini-batches, in order. SingleRecord: one bare payload per body. MultiRecord:
 * consecutive records while the body stays within maxBytes (a body of exactly maxBytes is allowed).
 * A record that cannot fit alone is a DataError naming its offset.
 */
export async function* packMiniBatches(
  records: AsyncIterable<DataRecord[]>,
  opts: PackOptions,
): AsyncGenerator<MiniBatch> {
  for await (const group of packMiniBatchGroups(records, opts)) yield* group;
}

/** packMiniBatches, yielding the mini-batches each group of records completes (no per-batch await). */
export async function* packMiniBatchGroups(
  records: AsyncIterable<DataRecord[]>,
  opts: PackOptions,
): AsyncGenerator<MiniBatch[]> {
  const packer = new RecordPacker(opts);
  for await (const group of records) {
    const out = packer.add(group);
    if (out.length > 0) yield out;
  }
  const last = packer.finish();
  if (last) yield [last];
}

/** The packing itself, synchronous: records in, completed mini-batches out. */
class RecordPacker {
  private readonly header: Buffer | undefined;
  private readonly prefix: number;
  private readonly max: number;
  private readonly single: boolean;
  private readonly sep: 0 | 1;
  private parts: Buffer[] = [];
  private size: number;
  private starts: number[] = [];
  private offsets: number[] = [];
  private inputs: Buffer[] | undefined;
  private readonly grid: number | undefined;
  /** The open mini-batch ends before a record starting here (the next grid point). */
  private gridLimit = Number.POSITIVE_INFINITY;

  constructor(opts: PackOptions) {
    this.grid = opts.gridBytes;
    this.header = opts.header;
    this.prefix = opts.header ? opts.header.length + 1 : 0;
    this.size = this.prefix;
    this.max = opts.maxBytes;
    this.single = opts.batchStrategy === 'SingleRecord';
    this.sep = opts.lineJoined ? 1 : 0;
  }

  add(records: readonly DataRecord[]): MiniBatch[] {
    const out: MiniBatch[] = [];
    const { header, prefix, max, sep } = this;
    if (this.single) {
      for (const r of records) {
        const payload = r.payload;
        if (payload.length + prefix > max) throw tooLarge(r.offset, payload.length, prefix, max);
        const parts = header ? [header, NEWLINE, payload] : [payload];
        const layout: BatchLayout | undefined = r.input ? { sep: 0, inputs: [r.input] } : undefined;
        out.push(new MiniBatch(parts, prefix + payload.length, 1, r.offset, header, layout));
      }
      return out;
    }
    for (const r of records) {
      const bytes = r.framed;
      if (this.offsets.length > 0 && (this.size + sep + bytes.length > max || r.offset >= this.gridLimit))
        out.push(this.finish()!);
      if (this.offsets.length === 0) {
        this.gridLimit = nextGridPoint(r.offset, this.grid);
        if (prefix + bytes.length > max) throw tooLarge(r.offset, bytes.length, prefix, max);
      } else {
        this.size += sep;
      }
      this.starts.push(this.size - prefix);
      this.offsets.push(r.offset);
      if (sep) appendLine(this.parts, bytes);
      else appendPart(this.parts, bytes);
      this.size += bytes.length;
      if (r.input) {
        this.inputs ??= [];
        this.inputs.push(r.input);
      }
    }
    return out;
  }

  /** The open mini-batch, closed; undefined when none is open. */
  finish(): MiniBatch | undefined {
    const n = this.offsets.length;
    if (n === 0) return undefined;
    const { header } = this;
    if (header) this.parts.unshift(header, NEWLINE);
    const batch = new MiniBatch(this.parts, this.size, n, this.offsets[0]!, header, {
      sep: this.sep,
      starts: Int32Array.from(this.starts),
      offsets: Float64Array.from(this.offsets),
      inputs: this.inputs,
    });
    this.parts = [];
    this.size = this.prefix;
    this.starts = [];
    this.offsets = [];
    this.inputs = undefined;
    return batch;
  }
}

export function tooLarge(offset: number, size: number, prefix: number, max: number): DataError {
  if (prefix === 0) return oversizeRecordError(offset, size, max);
  return new DataError(
    `record at byte offset ${offset} is ${size} bytes; with the repeated CSV header (${prefix} bytes) ` +
      `that is more than MaxPayloadInMB allows (${max} bytes)`,
    offset,
  );
}
