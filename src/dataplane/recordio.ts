import { ChunkQueue } from './chunks';
import { DataError, oversizeRecordError } from './errors';
import { DataRecord, type SplitOptions } from './record';
import { shardReadStart } from './shard';

/**
 * MXNet / dmlc RecordIO (dmlc-core recordio.h): every part is
 *   uint32 LE magic 0xCED7230A | uint32 LE lrecord | data | zero padding to a multiple of 4,
 * lrecord = cflag << 29 | length. dmlc's writer never lets the magic appear 4-byte-aligned inside a
 * record: it cuts the record there and drops the magic, writing parts flagged 1 (first), 2 (middle),
 * 3 (last); cflag 0 is a whole record. A reader re-joins the parts with the magic between them.
 */
export const RECORDIO_MAGIC = 0xced7230a;
const MAGIC_BYTES = Buffer.from([0x0a, 0x23, 0xd7, 0xce]);
const LENGTH_MASK = (1 << 29) - 1;

const pad4 = (n: number) => (n + 3) & ~3;

/** Encodes one record exactly as dmlc's RecordIOWriter does (for fixtures, tests and example models). */
export function encodeRecordIO(data: Uint8Array): Buffer {
  if (data.length > LENGTH_MASK) throw new RangeError('RecordIO records are limited to 2^29 - 1 bytes');
  const pieces: Buffer[] = [];
  const header = (cflag: number, len: number) => {
    const h = Buffer.allocUnsafe(8);
    h.writeUInt32LE(RECORDIO_MAGIC, 0);
    h.writeUInt32LE(((cflag << 29) | len) >>> 0, 4);
    pieces.push(h);
  };
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.length);
  let from = 0;
  for (let i = 0; i + 4 <= (data.length & ~3); i += 4) {
    if (bytes.readUInt32LE(i) === RECORDIO_MAGIC) {
      header(from === 0 ? 1 : 2, i - from);
      pieces.push(bytes.subarray(from, i));
      from = i + 4;
    }
  }
  header(from === 0 ? 0 : 3, data.length - from);
  pieces.push(bytes.subarray(from), Buffer.alloc(pad4(data.length) - data.length));
  return Buffer.concat(pieces);
}

/**
 * Incremental RecordIO reader: push chunks, drain complete records. Errors name the absolute offset
 * of the part header at fault.
 */
export class RecordIOReader {
  private readonly q: ChunkQueue;
  private readonly stop: number;
  private readonly max: number;
  private seeking: boolean;
  /** Set when the window's end is reached, or the window holds no record start. */
  stopped = false;
  /** Offset, relative to the record start, of the next part header to read. */
  private walk = 0;
  /** Payload spans [start, end) of the open record's parts, relative to the record start. */
  private parts: number[] = [];
  private payloadLen = 0;

  constructor(opts: SplitOptions) {
    this.q = new ChunkQueue(opts.window ? shardReadStart('RecordIO', opts.window) : 0);
    this.stop = opts.window?.end ?? Number.POSITIVE_INFINITY;
    this.seeking = (opts.window?.start ?? 0) > 0;
    this.max = opts.maxRecordBytes ?? LENGTH_MASK;
  }

  push(chunk: Buffer): void {
    this.q.push(chunk);
  }

  drain(eof: boolean): DataRecord[] {
    const out: DataRecord[] = [];
    for (;;) {
      if (this.seeking) {
        if (!this.seek(eof)) return out;
        this.seeking = false;
      }
      if (this.q.offset >= this.stop) {
        this.stopped = true;
        return out;
      }
      if (this.q.length === 0) return out;
      const rec = this.read(eof);
      if (!rec) return out;
      out.push(rec);
    }
  }

  private read(eof: boolean): DataRecord | undefined {
    const q = this.q;
    for (;;) {
      const at = this.walk;
      if (q.length < at + 8) return this.needMore(eof);
      if (q.uint32(at) !== RECORDIO_MAGIC) {
        throw new DataError(
          `not a RecordIO header (bad magic) at byte offset ${q.offset + at}`,
          q.offset + at,
        );
      }
      const lrec = q.uint32(at + 4);
      const cflag = lrec >>> 29;
      const len = lrec & LENGTH_MASK;
      const first = at === 0;
      if (first ? cflag > 1 : cflag !== 2 && cflag !== 3) {
        const want = first ? 'a record start (cflag 0 or 1)' : 'a continuation part (cflag 2 or 3)';
        throw new DataError(
          `expected ${want} at byte offset ${q.offset + at}, found cflag ${cflag}`,
          q.offset + at,
        );
      }
      const payload = this.payloadLen + (first ? 0 : 4) + len;
      if (payload > this.max)
        throw oversizeRecordError(q.offset, payload, this.max, cflag === 1 || cflag === 2);
      const next = at + 8 + pad4(len);
      if (q.length < next) return this.needMore(eof);
      this.parts.push(at + 8, at + 8 + len);
      this.payloadLen = payload;
      this.walk = next;
      if (cflag === 0 || cflag === 3) return this.complete();
    }
  }

  private complete(): DataRecord {
    const offset = this.q.offset;
    const framed = this.q.take(this.walk);
    const p = this.parts;
    let rec: DataRecord;
    if (p.length === 2) {
      rec = new DataRecord(offset, framed, 8, framed.length - p[1]!);
    } else {
      const pieces: Buffer[] = [];
      for (let k = 0; k < p.length; k += 2) {
        if (k > 0) pieces.push(MAGIC_BYTES);
        pieces.push(framed.subarray(p[k]!, p[k + 1]!));
      }
      rec = new DataRecord(offset, framed, 0, 0, Buffer.concat(pieces, this.payloadLen));
    }
    this.walk = 0;
    this.parts = [];
    this.payloadLen = 0;
    return rec;
  }

  private needMore(eof: boolean): undefined {
    if (eof) {
      throw new DataError(
        `RecordIO data ends inside the record at byte offset ${this.q.offset} (truncated object)`,
        this.q.offset,
      );
    }
    return undefined;
  }

  /**
   * Skips to the window's first record start: an aligned magic with cflag 0 or 1. A writer that does
   * not escape the magic (SageMaker's Python SDK writes payloads as they are) can leave one inside a
   * payload, so a candidate must also be followed by a valid next header (or the end of the object);
   * a false match then needs two aligned magics in the right places, about 2^-64 per position.
   * Returns false while more data is needed, or when the window holds no record start (stopped).
   */
  private seek(eof: boolean): boolean {
    const q = this.q;
    for (;;) {
      if (q.offset >= this.stop) {
        this.stopped = true;
        return false;
      }
      if (q.length < 8) {
        if (eof) this.stopped = true;
        return false;
      }
      if (q.uint32(0) === RECORDIO_MAGIC) {
        const lrec = q.uint32(4);
        const cflag = lrec >>> 29;
        const len = lrec & LENGTH_MASK;
        if (cflag <= 1) {
          // Too large to buffer for the check: take it as a boundary, and read() reports it as oversize.
          if (len > this.max) return true;
          const next = 8 + pad4(len);
          if (q.length < next + 8) {
            if (!eof) return false;
            if (q.length === next && cflag === 0) return true;
          } else if (q.uint32(next) === RECORDIO_MAGIC) {
            const nextFlag = q.uint32(next + 4) >>> 29;
            if (cflag === 0 ? nextFlag <= 1 : nextFlag === 2 || nextFlag === 3) return true;
          }
        }
      }
      q.skip(4);
    }
  }
}
