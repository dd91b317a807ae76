import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DataError } from '../../src/dataplane/errors';
import { splitRecords } from '../../src/dataplane/split';
import { collectRecords, cutAt, cutsFor, lineArb, rejection } from './helpers';

const lines = async (text: string, cuts: number[] = [], csvQuotedNewlines = false) =>
  (
    await collectRecords(
      splitRecords(cutAt(Buffer.from(text, 'latin1'), cuts), { splitType: 'Line', csvQuotedNewlines }),
    )
  ).map((r) => [r.offset, r.payload.toString('latin1')]);

describe('Line splitting', () => {
  it.each([
    ['', []],
    ['a', [[0, 'a']]],
    ['a\n', [[0, 'a']]],
    [
      'a\nbc\n',
      [
        [0, 'a'],
        [2, 'bc'],
      ],
    ],
    [
      'a\nbc',
      [
        [0, 'a'],
        [2, 'bc'],
      ],
    ],
    ['\n', [[0, '']]],
    [
      'a\n\nb\n',
      [
        [0, 'a'],
        [2, ''],
        [3, 'b'],
      ],
    ],
    [
      'a\r\nb\r\n',
      [
        [0, 'a\r'],
        [3, 'b\r'],
      ],
    ],
  ])('splits %j into records with their offsets', async (text, expected) => {
    expect(await lines(text)).toEqual(expected);
  });

  it('gives the same records and offsets at every chunking (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(lineArb, { maxLength: 20 }),
        fc.boolean(),
        fc.nat(),
        async (ls, trailing, seed) => {
          const text = ls.join('\n') + (trailing && ls.length > 0 ? '\n' : '');
          const cuts = fc.sample(cutsFor(text.length), { seed, numRuns: 1 })[0]!;
          const expected: Array<[number, string]> = [];
          let at = 0;
          const segments = text.split('\n');
          if (segments.at(-1) === '') segments.pop();
          for (const s of segments) {
            expected.push([at, s]);
            at += s.length + 1;
          }
          expect(await lines(text, cuts)).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('cuts every chunk boundary position of a small input', async () => {
    const text = 'ab\ncd\n\nefg\nh';
    for (let c = 0; c <= text.length; c++) {
      for (let d = c; d <= text.length; d++) {
        expect(await lines(text, [c, d])).toEqual([
          [0, 'ab'],
          [3, 'cd'],
          [6, ''],
          [7, 'efg'],
          [11, 'h'],
        ]);
      }
    }
  });

  it('keeps a record that spans chunks in one buffer', async () => {
    const records = await collectRecords(
      splitRecords(cutAt(Buffer.from('abcdef\nx'), [2, 4]), { splitType: 'Line' }),
    );
    expect(records[0]!.payload.toString()).toBe('abcdef');
  });

  it('fails a line longer than maxRecordBytes before buffering it whole, naming its offset', async () => {
    const big = `ok\n${'x'.repeat(100)}`;
    const e = await rejection(
      collectRecords(
        splitRecords(cutAt(Buffer.from(big), [10, 20]), { splitType: 'Line', maxRecordBytes: 5 }),
      ),
    );
    expect(e).toBeInstanceOf(DataError);
    expect(e.offset).toBe(3);
    expect(e.message).toMatch(/byte offset 3 is at least/);
  });
});

describe('CSV-aware Line splitting (CsvQuotedNewlines)', () => {
  it.each([
    [
      'a,"b\nc"\nd\n',
      [
        [0, 'a,"b\nc"'],
        [8, 'd'],
      ],
    ],
    [
      '"x""\n"\ny',
      [
        [0, '"x""\n"'],
        [7, 'y'],
      ],
    ],
    [
      '"a\n\nb",1\n2',
      [
        [0, '"a\n\nb",1'],
        [9, '2'],
      ],
    ],
    [
      'plain\nrows\n',
      [
        [0, 'plain'],
        [6, 'rows'],
      ],
    ],
  ])('keeps quoted newlines inside the record: %j', async (text, expected) => {
    for (let c = 0; c <= text.length; c++) expect(await lines(text, [c], true)).toEqual(expected);
  });

  it('round-trips random quoted CSV at random chunkings (property)', async () => {
    const field = fc.oneof(
      fc.string({ unit: fc.constantFrom('a', '1', ' '), maxLength: 4 }),
      fc.string({ unit: fc.constantFrom('a', ',', '\n', '""'), maxLength: 5 }).map((s) => `"${s}"`),
    );
    const row = fc.array(field, { minLength: 1, maxLength: 4 }).map((f) => f.join(','));
    await fc.assert(
      fc.asyncProperty(fc.array(row, { minLength: 1, maxLength: 10 }), fc.nat(), async (rows, seed) => {
        const text = `${rows.join('\n')}\n`;
        const cuts = fc.sample(cutsFor(text.length), { seed, numRuns: 1 })[0]!;
        const got = await lines(text, cuts, true);
        expect(got.map(([, r]) => r)).toEqual(rows);
      }),
      { numRuns: 200 },
    );
  });
});
