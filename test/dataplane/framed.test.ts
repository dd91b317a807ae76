import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c, maskCrc } from '../../src/dataplane/crc32c';
import { DataError } from '../../src/dataplane/errors';
import { encodeRecordIO, RECORDIO_MAGIC } from '../../src/dataplane/recordio';
import { splitRecords } from '../../src/dataplane/split';
import { encodeTFRecord } from '../../src/dataplane/tfrecord';
import { chunked, collectRecords, cutAt, cutsFor, rejection } from './helpers';

const MAGIC = Buffer.alloc(4);
MAGIC.writeUInt32LE(RECORDIO_MAGIC);

/** Payloads that often hold the RecordIO magic, aligned or not. */
const payloadArb = fc
  .array(fc.oneof(fc.uint8Array({ maxLength: 9 }), fc.constant(new Uint8Array(MAGIC))), { maxLength: 5 })
  .map((parts) => Buffer.concat(parts));

describe('CRC32C', () => {
  it.each([
    ['123456789', Buffer.from('123456789'), 0xe3069283],
    ['32 zero bytes', Buffer.alloc(32), 0x8a9136aa],
    ['32 0xff bytes', Buffer.alloc(32, 0xff), 0x62a8ab43],
    ['bytes 0..31', Buffer.from(Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e],
  ])('matches the RFC 3720 check value for %s', (_name, data, crc) => {
    expect(crc32c(data)).toBe(crc);
  });

  it('agrees with the bitwise definition on random data (property)', () => {
    const bitwise = (b: Uint8Array) => {
      let c = 0xffffffff;
      for (const x of b) {
        c ^= x;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      }
      return (c ^ 0xffffffff) >>> 0;
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70 }), (data) => {
        expect(crc32c(data)).toBe(bitwise(data));
      }),
    );
  });

  it('continues a running checksum across pieces (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(), (data, cut) => {
        const b = Buffer.from(data);
        const at = data.length === 0 ? 0 : cut % (data.length + 1);
        expect(crc32c(b, at, b.length, crc32c(b, 0, at))).toBe(crc32c(b));
      }),
    );
  });

  it('masks as TFRecord does', () => {
    expect(maskCrc(0)).toBe(0xa282ead8);
    expect(maskCrc(0x8000)).toBe((1 + 0xa282ead8) >>> 0);
  });
});

describe('RecordIO', () => {
  const split = (buf: Buffer, cuts: number[] = []) =>
    collectRecords(splitRecords(cutAt(buf, cuts), { splitType: 'RecordIO' }));

  it('round-trips random records at random chunkings, with offsets and framing (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(payloadArb, { maxLength: 8 }), fc.nat(), async (payloads, seed) => {
        const framed = payloads.map((p) => encodeRecordIO(p));
        const file = Buffer.concat(framed);
        const cuts = fc.sample(cutsFor(file.length), { seed, numRuns: 1 })[0]!;
        const records = await split(file, cuts);
        expect(records.map((r) => r.payload)).toEqual(payloads);
        expect(records.map((r) => r.framed)).toEqual(framed);
        const offsets = framed.map((_, i) => framed.slice(0, i).reduce((n, f) => n + f.length, 0));
        expect(records.map((r) => r.offset)).toEqual(offsets);
      }),
      { numRuns: 300 },
    );
  });

  it('writes a record holding the aligned magic as first/middle/last parts and re-joins it with the magic', async () => {
    const data = Buffer.concat([Buffer.from('abcd'), MAGIC, Buffer.from('efgh'), MAGIC, Buffer.from('xy')]);
    const framed = encodeRecordIO(data);
    const flags = [0, 12, 24].map((at) => framed.readUInt32LE(at + 4) >>> 29);
    expect(flags).toEqual([1, 2, 3]);
    const [rec] = await split(framed);
    expect(rec!.payload).toEqual(data);
    expect(rec!.framed).toEqual(framed);
  });

  it('leaves an unaligned magic inside a whole record', () => {
    const data = Buffer.concat([Buffer.from('ab'), MAGIC]);
    expect(encodeRecordIO(data).readUInt32LE(4) >>> 29).toBe(0);
  });

  it('fails on a bad magic, naming the offset of the header', async () => {
    const file = Buffer.concat([encodeRecordIO(Buffer.from('hello')), Buffer.from('garbage!')]);
    const e = await rejection(split(file));
    expect(e).toBeInstanceOf(DataError);
    expect(e.offset).toBe(16);
    expect(e.message).toContain('bad magic) at byte offset 16');
  });

  it.each([
    ['inside a header', 19],
    ['inside a payload', 27],
    ['inside the padding', 31],
  ])('fails on a stream truncated %s, naming the record offset', async (_where, length) => {
    const file = Buffer.concat([
      encodeRecordIO(Buffer.from('hello')),
      encodeRecordIO(Buffer.from('world!!!!!!!!')),
    ]);
    const e = await rejection(split(file.subarray(0, length), [17]));
    expect(e.message).toMatch(/ends inside the record at byte offset 16/);
    expect(e.offset).toBe(16);
  });

  it('fails on a continuation part where a record should start', async () => {
    const parts = encodeRecordIO(Buffer.concat([Buffer.from('abcd'), MAGIC, Buffer.from('efgh')]));
    const e = await rejection(split(parts.subarray(12)));
    expect(e.message).toMatch(/expected a record start \(cflag 0 or 1\) at byte offset 0, found cflag 3/);
  });

  it('fails a record larger than maxRecordBytes from its header alone', async () => {
    const file = encodeRecordIO(Buffer.alloc(1000));
    const e = await rejection(
      collectRecords(
        splitRecords(cutAt(file.subarray(0, 20)), { splitType: 'RecordIO', maxRecordBytes: 999 }),
      ),
    );
    expect(e.message).toMatch(/record at byte offset 0 is 1000 bytes/);
  });
});

describe('TFRecord', () => {
  const split = (buf: Buffer, cuts: number[] = []) =>
    collectRecords(splitRecords(cutAt(buf, cuts), { splitType: 'TFRecord' }));

  it('round-trips random records at random chunkings (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 30 }), { maxLength: 8 }),
        fc.nat(),
        async (payloads, seed) => {
          const framed = payloads.map((p) => encodeTFRecord(p));
          const file = Buffer.concat(framed);
          const cuts = fc.sample(cutsFor(file.length), { seed, numRuns: 1 })[0]!;
          const records = await split(file, cuts);
          expect(records.map((r) => r.payload)).toEqual(payloads.map((p) => Buffer.from(p)));
          expect(records.map((r) => r.framed)).toEqual(framed);
          expect(records.map((r) => r.offset)).toEqual(
            framed.map((_, i) => framed.slice(0, i).reduce((s, f) => s + f.length, 0)),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('frames a record exactly as an independent implementation does', async () => {
    // Computed with a bitwise CRC32C and the mask written out by hand (Python, struct.pack('<Q', 5) ...).
    const expected = Buffer.from('0500000000000000eab2043e68656c6c6fbb1f1c19', 'hex');
    expect(encodeTFRecord(Buffer.from('hello'))).toEqual(expected);
    const [rec] = await split(expected);
    expect(rec!.payload.toString()).toBe('hello');
  });

  it.each([
    ['length', 9, 'length checksum mismatch'],
    ['data', 14, 'data checksum mismatch'],
    ['data checksum', 32, 'data checksum mismatch'],
  ])('fails on a corrupted %s byte, naming the record offset', async (_what, byte, message) => {
    const file = Buffer.concat([encodeTFRecord(Buffer.from('abc')), encodeTFRecord(Buffer.from('defgh'))]);
    file[byte]! ^= 0x40;
    const e = await rejection(split(file, [5, 20]));
    expect(e).toBeInstanceOf(DataError);
    expect(e.message).toContain(`${message} in the record at byte offset ${byte < 19 ? 0 : 19}`);
    expect(e.offset).toBe(byte < 19 ? 0 : 19);
  });

  it('reads a record spanning a hundred thousand chunks in linear time', async () => {
    const payload = Buffer.alloc(300_000, 7);
    const [rec] = await collectRecords(
      splitRecords(chunked(encodeTFRecord(payload), 3), { splitType: 'TFRecord' }),
    );
    expect(rec!.payload).toEqual(payload);
  });

  it('fails on a truncated stream, naming the record offset', async () => {
    const file = Buffer.concat([encodeTFRecord(Buffer.from('abc')), encodeTFRecord(Buffer.from('defgh'))]);
    for (const length of [20, 30, 37]) {
      const e = await rejection(split(file.subarray(0, length)));
      expect(e.message).toBe('TFRecord data ends inside the record at byte offset 19 (truncated object)');
    }
  });
});

describe('SplitType None', () => {
  it('makes the whole object one record, and an empty object none', async () => {
    const recs = await collectRecords(
      splitRecords(cutAt(Buffer.from('a\nb\n'), [1, 3]), { splitType: 'None' }),
    );
    expect(recs.map((r) => [r.offset, r.payload.toString()])).toEqual([[0, 'a\nb\n']]);
    expect(await collectRecords(splitRecords(cutAt(Buffer.alloc(0)), { splitType: 'None' }))).toEqual([]);
  });

  it('fails an object larger than the limit as soon as it passes it', async () => {
    const e = await rejection(
      collectRecords(
        splitRecords(cutAt(Buffer.alloc(50), [10, 20]), { splitType: 'None', maxRecordBytes: 15 }),
      ),
    );
    expect(e.message).toMatch(/at least 20 bytes; with SplitType None/);
  });
});
