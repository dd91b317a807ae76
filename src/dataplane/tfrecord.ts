import { ChunkQueue } from './chunks';
import { crc32c, maskCrc } from './crc32c';
import { DataError, oversizeRecordError } from './errors';
import { DataRecord, type SplitOptions } from './record';

/**
 * TFRecord framing (tensorflow/core/lib/io/record_writer.h):
 *   uint64 LE length | uint32 LE masked CRC32C(length bytes) | data | uint32 LE masked CRC32C(data)
 */
const HEADER = 12;
const FOOTER = 4;

/** Encodes one record (for fixtures, tests and example models). */
export function encodeTFRecord(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER + data.length + FOOTER);
  out.writeUInt32LE(data.length >>> 0, 0);
  out.writeUInt32LE(Math.floor(data.length / 2 ** 32), 4);
  out.writeUInt32LE(maskCrc(crc32c(out, 0, 8)), 8);
  out.set(data, HEADER);
  out.writeUInt32LE(maskCrc(crc32c(data)), HEADER + data.length);
  return out;
}

/** Incremental TFRecord reader: push chunks, drain complete records; both checksums are verified. */
export class TFRecordReader {
  private readonly q = new ChunkQueue(0);
  private readonly max: number;
  readonly stopped = false;

  constructor(opts: SplitOptions) {
    if (opts.window) throw new Error('TFRecord objects cannot be sharded');
    this.max = opts.maxRecordBytes ?? 2 ** 31;
  }

  push(chunk: Buffer): void {
    this.q.push(chunk);
  }

  drain(eof: boolean): DataRecord[] {
    const q = this.q;
    const out: DataRecord[] = [];
    while (q.length > 0) {
      const offset = q.offset;
      if (q.length < HEADER) return this.needMore(eof, out);
      const lengthBytes = q.peek(8);
      if (maskCrc(crc32c(lengthBytes)) !== q.uint32(8)) {
        throw new DataError(
          `TFRecord length checksum mismatch in the record at byte offset ${offset}`,
          offset,
        );
      }
      const len = lengthBytes.readUInt32LE(0) + lengthBytes.readUInt32LE(4) * 2 ** 32;
      if (len > this.max) throw oversizeRecordError(offset, len, this.max);
      const total = HEADER + len + FOOTER;
      if (q.length < total) return this.needMore(eof, out);
      const framed = q.take(total);
      if (maskCrc(crc32c(framed, HEADER, HEADER + len)) !== framed.readUInt32LE(HEADER + len)) {
        throw new DataError(`TFRecord data checksum mismatch in the record at byte offset ${offset}`, offset);
      }
      out.push(new DataRecord(offset, framed, HEADER, FOOTER));
    }
    return out;
  }

  private needMore(eof: boolean, out: DataRecord[]): DataRecord[] {
    if (eof) {
      throw new DataError(
        `TFRecord data ends inside the record at byte offset ${this.q.offset} (truncated object)`,
        this.q.offset,
      );
    }
    return out;
  }
}
