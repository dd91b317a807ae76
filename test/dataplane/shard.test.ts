import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readMiniBatches } from '../../src/dataplane/input';
import type { ShardWindow } from '../../src/dataplane/record';
import { encodeRecordIO, RECORDIO_MAGIC } from '../../src/dataplane/recordio';
import { shardable, shardReadStart } from '../../src/dataplane/shard';
import { splitRecords } from '../../src/dataplane/split';
import { buffered, CSV_LINE, collect, collectRecords, cutAt, lineArb, recordsOf } from './helpers';

/** Windows [0, c1), [c1, c2), ... [ck, size) for sorted distinct cut points. */
function windows(size: number, cuts: number[]): ShardWindow[] {
  const points = [...new Set(cuts.map((c) => c % (size + 1)))]
    .filter((c) => c > 0 && c < size)
    .sort((a, b) => a - b);
  const bounds = [0, ...points, size];
  return bounds.slice(1).map((end, i) => ({ start: bounds[i]!, end }));
}

/** The bytes a shard reads: from its read start to the end of the object, in chunks. */
const shardSource = (file: Buffer, split: 'Line' | 'RecordIO', w: ShardWindow, chunk: number) => {
  const from = shardReadStart(split, w);
  const cuts: number[] = [];
  for (let i = chunk; i < file.length - from; i += chunk) cuts.push(i);
  return cutAt(file.subarray(from), cuts);
};

describe('shard windows', () => {
  it.each([
    ['Line', 'None', false, true],
    ['Line', 'Gzip', false, false],
    ['Line', 'None', true, false],
    ['RecordIO', 'None', false, true],
    ['RecordIO', 'Gzip', false, false],
    ['TFRecord', 'None', false, false],
    ['None', 'None', false, false],
  ] as const)(
    '%s with compression %s (quoted newlines %s) shardable: %s',
    (splitType, compressionType, q, expected) => {
      expect(shardable({ splitType, compressionType, csvQuotedNewlines: q })).toBe(expected);
    },
  );

  it.each([
    ['Line', { start: 0, end: 10 }, 0],
    ['Line', { start: 7, end: 10 }, 6],
    ['RecordIO', { start: 0, end: 10 }, 0],
    ['RecordIO', { start: 5, end: 10 }, 8],
    ['RecordIO', { start: 8, end: 10 }, 8],
  ] as const)('%s window %j starts reading at %i', (split, w, at) => {
    expect(shardReadStart(split, w)).toBe(at);
  });

  it('Line shards together yield every record exactly once, in order (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(lineArb, { minLength: 1, maxLength: 15 }),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.integer({ min: 1, max: 9 }),
        async (ls, trailing, cuts, chunk) => {
          const file = Buffer.from(ls.join('\n') + (trailing ? '\n' : ''), 'latin1');
          const whole = await collectRecords(splitRecords(cutAt(file), { splitType: 'Line' }));
          const parts = [];
          const batched = [];
          for (const window of windows(file.length, cuts)) {
            const recs = await collectRecords(
              splitRecords(shardSource(file, 'Line', window, chunk), { splitType: 'Line', window }),
            );
            parts.push(...recs);
            for (const b of buffered(
              await collect(
                readMiniBatches(
                  shardSource(file, 'Line', window, chunk),
                  { ...CSV_LINE, maxPayloadInMB: 1 },
                  { window },
                ),
              ),
            )) {
              batched.push(...recordsOf(b));
            }
          }
          const expected = whole.map((r) => [r.offset, r.payload.toString('latin1')]);
          expect(parts.map((r) => [r.offset, r.payload.toString('latin1')])).toEqual(expected);
          expect(batched).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('RecordIO shards together yield every record exactly once, in order (property)', async () => {
    const magic = Buffer.alloc(4);
    magic.writeUInt32LE(RECORDIO_MAGIC);
    const payload = fc
      .array(fc.oneof(fc.uint8Array({ maxLength: 7 }), fc.constant(new Uint8Array(magic))), { maxLength: 4 })
      .map((p) => Buffer.concat(p));
    await fc.assert(
      fc.asyncProperty(
        fc.array(payload, { minLength: 1, maxLength: 10 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.integer({ min: 1, max: 13 }),
        async (payloads, cuts, chunk) => {
          const file = Buffer.concat(payloads.map((p) => encodeRecordIO(p)));
          const got = [];
          for (const window of windows(file.length, cuts)) {
            got.push(
              ...(await collectRecords(
                splitRecords(shardSource(file, 'RecordIO', window, chunk), { splitType: 'RecordIO', window }),
              )),
            );
          }
          expect(got.map((r) => r.payload)).toEqual(payloads);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('RecordIO skips an aligned magic inside a payload written without escaping', async () => {
    // SageMaker's Python SDK writes payloads as they are; this one holds a fake header (cflag 0, length 4).
    const fake = Buffer.alloc(16);
    fake.writeUInt32LE(RECORDIO_MAGIC, 0);
    fake.writeUInt32LE(4, 4);
    const raw = (p: Buffer) => {
      const h = Buffer.alloc(8);
      h.writeUInt32LE(RECORDIO_MAGIC, 0);
      h.writeUInt32LE(p.length, 4);
      return Buffer.concat([h, p, Buffer.alloc(((p.length + 3) & ~3) - p.length)]);
    };
    const file = Buffer.concat([raw(fake), raw(Buffer.from('next'))]);
    const window = { start: 4, end: file.length };
    const recs = await collectRecords(
      splitRecords(shardSource(file, 'RecordIO', window, 5), { splitType: 'RecordIO', window }),
    );
    expect(recs.map((r) => [r.offset, r.payload.toString()])).toEqual([[24, 'next']]);
  });

  it('stops reading once a record starts at or past the window end', async () => {
    const file = Buffer.from('aaaa\nbbbb\ncccc\ndddd\n'.repeat(50));
    let read = 0;
    const source = async function* () {
      for await (const c of cutAt(
        file,
        Array.from({ length: 100 }, (_, i) => i * 10),
      )) {
        read += c.length;
        yield c;
      }
    };
    const batches = buffered(
      await collect(readMiniBatches(source(), CSV_LINE, { window: { start: 0, end: 12 } })),
    );
    expect(batches.flatMap(recordsOf)).toEqual([
      [0, 'aaaa'],
      [5, 'bbbb'],
      [10, 'cccc'],
    ]);
    expect(read).toBeLessThan(30);
  });
});
