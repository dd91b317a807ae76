import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type MiniBatch, packMiniBatches } from '../../src/dataplane/batch';
import { DataError } from '../../src/dataplane/errors';
import { readHeaderLine, readMiniBatches } from '../../src/dataplane/input';
import { type DataPlaneOptions, MIB } from '../../src/dataplane/options';
import { LineBatcher, type LinePackOptions } from '../../src/dataplane/pack-lines';
import { encodeRecordIO } from '../../src/dataplane/recordio';
import { splitRecords } from '../../src/dataplane/split';
import { encodeTFRecord } from '../../src/dataplane/tfrecord';
import {
  buffered,
  CSV_LINE,
  chunked,
  collect,
  cutAt,
  cutsFor,
  lineArb,
  recordsOf,
  rejection,
} from './helpers';

const text = (b: MiniBatch) => b.body.toString('latin1');

/** Line batches from the fast path (LineBatcher). */
function fastLines(file: string, opts: Partial<LinePackOptions> & { maxBytes: number }, cuts: number[] = []) {
  const b = new LineBatcher({ batchStrategy: 'MultiRecord', ...opts });
  return (async () => {
    const out: MiniBatch[] = [];
    for await (const c of cutAt(Buffer.from(file, 'latin1'), cuts)) out.push(...b.feed(c));
    out.push(...b.end());
    return out;
  })();
}

/** Line batches from the general path (splitRecords + packMiniBatches). */
function generalLines(file: string, maxBytes: number, cuts: number[] = [], header?: Buffer) {
  return collect(
    packMiniBatches(splitRecords(cutAt(Buffer.from(file, 'latin1'), cuts), { splitType: 'Line' }), {
      batchStrategy: 'MultiRecord',
      maxBytes,
      lineJoined: true,
      header,
    }),
  );
}

describe('MultiRecord packing of Line records', () => {
  it.each([
    ['fast path', (f: string, max: number) => fastLines(f, { maxBytes: max })],
    ['general path', (f: string, max: number) => generalLines(f, max)],
  ])('%s: a body of exactly the limit is allowed, one byte more is not', async (_name, pack) => {
    // 'aaaa\nbbbb' is 9 bytes.
    expect((await pack('aaaa\nbbbb\ncc\n', 9)).map(text)).toEqual(['aaaa\nbbbb', 'cc']);
    expect((await pack('aaaa\nbbbb\ncc\n', 8)).map(text)).toEqual(['aaaa', 'bbbb\ncc']);
    expect((await pack('aaaa\nbbbb\ncc\n', 8)).map((b) => b.byteLength)).toEqual([4, 7]);
  });

  it.each([
    ['fast path', (f: string, max: number) => fastLines(f, { maxBytes: max }, [3, 7])],
    ['general path', (f: string, max: number) => generalLines(f, max, [3, 7])],
  ])('%s: a line larger than the limit alone fails, naming its offset', async (_name, pack) => {
    const e = await rejection(pack('ok\ntoolong\nok\n', 6));
    expect(e).toBeInstanceOf(DataError);
    expect(e.offset).toBe(3);
    expect(e.message).toMatch(
      /record at byte offset 3 is 7 bytes, more than MaxPayloadInMB allows \(6 bytes\)/,
    );
  });

  it('counts MaxPayloadInMB in MiB exactly (n × 1,048,576 bytes)', async () => {
    const a = 'a'.repeat(MIB - 11);
    const file = Buffer.from(`${a}\n0123456789\nx\n`);
    const batches = buffered(
      await collect(readMiniBatches(chunked(file, 65536), { ...CSV_LINE, maxPayloadInMB: 1 })),
    );
    expect(batches.map((b) => [b.byteLength, b.count])).toEqual([
      [MIB, 2],
      [1, 1],
    ]);
  });

  it('fast and general paths make the same batches for random input and limits (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(lineArb, { maxLength: 25 }),
        fc.integer({ min: 12, max: 60 }),
        fc.nat(),
        async (ls, max, seed) => {
          const file = `${ls.join('\n')}\n`;
          const cuts = fc.sample(cutsFor(file.length), { seed, numRuns: 1 })[0]!;
          const fast = await fastLines(file, { maxBytes: max }, cuts);
          const general = await generalLines(file, max, cuts);
          expect(fast.map(text)).toEqual(general.map(text));
          expect(fast.map(recordsOf)).toEqual(general.map(recordsOf));
          for (const b of fast) expect(b.byteLength).toBeLessThanOrEqual(max);
          expect(fast.flatMap(recordsOf).map(([, r]) => r)).toEqual(file === '\n' ? [''] : ls);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps the body as slices of the input chunks (no copy)', async () => {
    const file = Buffer.from('aa\nbb\ncc\ndd\n');
    const [batch] = buffered(await collect(readMiniBatches(cutAt(file, [6]), CSV_LINE)));
    expect(batch!.parts.map((p) => p.buffer === file.buffer)).toEqual([true, true]);
    expect(batch!.body.toString()).toBe('aa\nbb\ncc\ndd');
  });
});

describe('SingleRecord packing', () => {
  it.each(['Line', 'RecordIO', 'TFRecord'] as const)('%s bodies are the bare records', async (splitType) => {
    const payloads = ['one', 'two!!', ''].map((s) => Buffer.from(s));
    const file =
      splitType === 'Line'
        ? Buffer.from('one\ntwo!!\n\n')
        : Buffer.concat(payloads.map(splitType === 'RecordIO' ? encodeRecordIO : encodeTFRecord));
    const batches = buffered(
      await collect(
        readMiniBatches(chunked(file, 3), { ...CSV_LINE, splitType, batchStrategy: 'SingleRecord' }),
      ),
    );
    expect(batches.map((b) => b.body.toString())).toEqual(['one', 'two!!', '']);
    expect(batches.map((b) => b.count)).toEqual([1, 1, 1]);
  });

  it('with MaxPayloadInMB 0 has no size limit', async () => {
    const big = 'x'.repeat(2 * MIB);
    const opts: DataPlaneOptions = { ...CSV_LINE, batchStrategy: 'SingleRecord', maxPayloadInMB: 0 };
    const batches = buffered(await collect(readMiniBatches(chunked(Buffer.from(`${big}\n`), 65536), opts)));
    expect(batches.map((b) => b.byteLength)).toEqual([2 * MIB]);
  });

  it('fails a record over the limit, naming its offset', async () => {
    const opts: DataPlaneOptions = { ...CSV_LINE, batchStrategy: 'SingleRecord', maxPayloadInMB: 1 };
    const e = await rejection(
      collect(readMiniBatches(chunked(Buffer.from(`a\n${'x'.repeat(MIB + 1)}\n`), 65536), opts)),
    );
    expect(e.offset).toBe(2);
  });
});

describe('MultiRecord packing of framed records', () => {
  it.each([
    ['RecordIO', encodeRecordIO],
    ['TFRecord', encodeTFRecord],
  ] as const)('%s bodies keep the framing and stay within the limit exactly', async (splitType, encode) => {
    const framed = ['a', 'bbbbb', 'ccccc', 'ddddd'].map((s) => encode(Buffer.from(s)));
    const limit = framed[0]!.length + framed[1]!.length;
    const batches = await collect(
      packMiniBatches(splitRecords(cutAt(Buffer.concat(framed), [5, 17]), { splitType }), {
        batchStrategy: 'MultiRecord',
        maxBytes: limit,
        lineJoined: false,
      }),
    );
    expect(batches.map((b) => b.body)).toEqual([Buffer.concat(framed.slice(0, 2)), framed[2], framed[3]]);
    expect(batches[0]!.record(1)).toEqual(framed[1]);
  });
});

describe('bisecting a mini-batch', () => {
  it('halves down to single records, each half a valid body of the same framing', async () => {
    const file = 'r0\nr1\nr2\nr3\nr4\n';
    const [batch] = await fastLines(file, { maxBytes: 100 }, [4, 9]);
    const [a, b] = batch!.split();
    expect([text(a), text(b)]).toEqual(['r0\nr1\nr2', 'r3\nr4']);
    expect([a.count, a.firstOffset, b.count, b.firstOffset]).toEqual([3, 0, 2, 9]);
    const leaves: MiniBatch[] = [];
    const halve = (m: MiniBatch) => (m.count === 1 ? leaves.push(m) : m.split().forEach(halve));
    halve(batch!);
    expect(leaves.map((l) => [l.firstOffset, text(l)])).toEqual([
      [0, 'r0'],
      [3, 'r1'],
      [6, 'r2'],
      [9, 'r3'],
      [12, 'r4'],
    ]);
    expect(() => leaves[0]!.split()).toThrow(/cannot be split/);
  });

  it('repeats the CSV header in both halves', async () => {
    const [batch] = await fastLines('h1,h2\na\nb\nc\n', { maxBytes: 100, csvHeader: 'Repeat' });
    expect(text(batch!)).toBe('h1,h2\na\nb\nc');
    expect(batch!.split().map(text)).toEqual(['h1,h2\na\nb', 'h1,h2\nc']);
    expect(batch!.split()[1].recordOffset(0)).toBe(10);
  });

  it('keeps RecordIO framing in both halves', async () => {
    const framed = ['a', 'b', 'c'].map((s) => encodeRecordIO(Buffer.from(s)));
    const [batch] = await collect(
      packMiniBatches(splitRecords(cutAt(Buffer.concat(framed)), { splitType: 'RecordIO' }), {
        batchStrategy: 'MultiRecord',
        maxBytes: 1000,
        lineJoined: false,
      }),
    );
    const [a, b] = batch!.split();
    expect([a.body, b.body]).toEqual([Buffer.concat(framed.slice(0, 2)), framed[2]]);
    expect([a.recordOffset(1), b.recordOffset(0)]).toEqual([12, 24]);
  });

  it('finds record positions with quoted newlines when bisecting a CsvQuotedNewlines batch', async () => {
    const [batch] = await fastLines('"a\nb"\nc\n"d\n"\n', { maxBytes: 100, csvQuotedNewlines: true });
    expect(recordsOf(batch!)).toEqual([
      [0, '"a\nb"'],
      [6, 'c'],
      [8, '"d\n"'],
    ]);
    expect(batch!.split().map(text)).toEqual(['"a\nb"\nc', '"d\n"']);
  });
});

describe('CSV header modes', () => {
  const file = 'id,x\n1,a\n2,b\n3,c\n';
  const read = async (csvHeader: 'None' | 'Skip' | 'Repeat', extra: Partial<DataPlaneOptions> = {}) =>
    buffered(
      await collect(readMiniBatches(chunked(Buffer.from(file), 4), { ...CSV_LINE, csvHeader, ...extra })),
    );

  it.each([
    ['None', 'MultiRecord', ['id,x\n1,a\n2,b\n3,c']],
    ['Skip', 'MultiRecord', ['1,a\n2,b\n3,c']],
    ['Repeat', 'MultiRecord', ['id,x\n1,a\n2,b\n3,c']],
    ['None', 'SingleRecord', ['id,x', '1,a', '2,b', '3,c']],
    ['Skip', 'SingleRecord', ['1,a', '2,b', '3,c']],
    ['Repeat', 'SingleRecord', ['id,x\n1,a', 'id,x\n2,b', 'id,x\n3,c']],
  ] as const)('%s with %s sends %j', async (mode, batchStrategy, bodies) => {
    const batches = await read(mode, { batchStrategy });
    expect(batches.map(text)).toEqual(bodies);
    // The header is never counted as a record.
    expect(batches.reduce((n, b) => n + b.count, 0)).toBe(mode === 'None' ? 4 : 3);
  });

  it('Repeat counts the header in the payload limit', async () => {
    // 'id,x\n1,a' is 8 bytes: with the header each body holds one row.
    const batches = await fastLines(file, { maxBytes: 9, csvHeader: 'Repeat' }, [3]);
    expect(batches.map(text)).toEqual(['id,x\n1,a', 'id,x\n2,b', 'id,x\n3,c']);
    const e = await rejection(fastLines(file, { maxBytes: 7, csvHeader: 'Repeat' }));
    expect(e.message).toMatch(/with the repeated CSV header \(5 bytes\)/);
  });

  it('Repeat passes the header through the InputFilter like the rows', async () => {
    const batches = await read('Repeat', { inputFilter: '$[1]' });
    expect(batches.map(text)).toEqual(['x\na\nb\nc']);
  });

  it('Repeat on a later shard uses the header line it is given', async () => {
    const header = await readHeaderLine(chunked(Buffer.from(file), 3));
    expect(header.toString()).toBe('id,x');
    const window = { start: 9, end: file.length };
    const batches = buffered(
      await collect(
        readMiniBatches(
          cutAt(Buffer.from(file).subarray(8)),
          { ...CSV_LINE, csvHeader: 'Repeat' },
          { window, header },
        ),
      ),
    );
    expect(batches.map(text)).toEqual(['id,x\n2,b\n3,c']);
  });
});

describe('SplitType None', () => {
  it('sends the whole object as one body when it fits', async () => {
    const opts: DataPlaneOptions = { ...CSV_LINE, splitType: 'None', contentType: 'application/json' };
    const batches = buffered(await collect(readMiniBatches(chunked(Buffer.from('{"a":\n1}\n'), 3), opts)));
    expect(batches.map(text)).toEqual(['{"a":\n1}\n']);
  });

  it('with MaxPayloadInMB 0 streams the object without buffering it', async () => {
    let pulled = 0;
    const source = async function* () {
      for (let i = 0; i < 1000; i++) {
        pulled++;
        yield Buffer.alloc(MIB, i % 256);
      }
    };
    const opts: DataPlaneOptions = { ...CSV_LINE, splitType: 'None', maxPayloadInMB: 0 };
    const it = readMiniBatches(source(), opts)[Symbol.asyncIterator]();
    const first = (await it.next()).value!;
    expect(first.streamed).toBe(true);
    expect(pulled).toBe(1);
    let bytes = 0;
    for await (const c of first.body as AsyncIterable<Buffer>) bytes += c.length;
    expect(bytes).toBe(1000 * MIB);
    expect((await it.next()).done).toBe(true);
  });

  it('with MaxPayloadInMB 0 ends the source when the streamed body is left early', async () => {
    let pulled = 0;
    let ended = false;
    const source = async function* () {
      try {
        for (let i = 0; i < 100; i++) {
          pulled++;
          yield Buffer.alloc(1024, i);
        }
      } finally {
        ended = true;
      }
    };
    const opts: DataPlaneOptions = { ...CSV_LINE, splitType: 'None', maxPayloadInMB: 0 };
    const first = (await readMiniBatches(source(), opts)[Symbol.asyncIterator]().next()).value!;
    // A consumer that stops after two pieces (the model answered early, or the job was stopped).
    let seen = 0;
    for await (const _ of first.body as AsyncIterable<Buffer>) if (++seen === 2) break;
    expect(ended).toBe(true);
    expect(pulled).toBe(2);
  });

  it('sends nothing for an empty object', async () => {
    const opts: DataPlaneOptions = { ...CSV_LINE, splitType: 'None', maxPayloadInMB: 0 };
    expect(await collect(readMiniBatches(cutAt(Buffer.alloc(0)), opts))).toEqual([]);
  });
});

describe('options the data plane refuses', () => {
  it.each([
    [{ maxPayloadInMB: 0 }, /MaxPayloadInMB 0/],
    [{ splitType: 'None', maxPayloadInMB: 0, joinSource: 'Input' }, /streams it/],
    [{ splitType: 'RecordIO', csvHeader: 'Skip' }, /CsvHeader need/],
    [{ splitType: 'TFRecord', inputFilter: '$[0]' }, /binary TFRecord/],
  ] as const)('%j', async (extra, message) => {
    const e = await rejection(collect(readMiniBatches(cutAt(Buffer.from('a\n')), { ...CSV_LINE, ...extra })));
    expect(e.message).toMatch(message);
  });
});
