import { isUtf8 } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { DataError } from '../../src/dataplane/errors';
import { firstInvalidUtf8 } from '../../src/dataplane/filter';
import { readMiniBatches } from '../../src/dataplane/input';
import { type DataPlaneOptions, inferenceTime } from '../../src/dataplane/options';
import { createOutputProcessor } from '../../src/dataplane/output';
import { buffered, CSV_LINE, chunked, collect, rejection } from './helpers';

/**
 * Runs a whole object through the data plane with `model` standing in for the model server: it gets
 * each request body as text and returns the response text. Returns the object's output and the bodies sent.
 */
async function transform(
  opts: Partial<DataPlaneOptions>,
  input: string | Buffer,
  model: (body: string) => string,
) {
  const o: DataPlaneOptions = { ...CSV_LINE, ...opts };
  const processor = createOutputProcessor(o);
  const sent: string[] = [];
  const out: Buffer[] = [];
  for (const batch of buffered(await collect(readMiniBatches(chunked(Buffer.from(input), 5), o)))) {
    sent.push(batch.body.toString());
    const response = Buffer.from(model(batch.body.toString()));
    const whole = processor.process(batch, response);
    // The same response arriving in 3-byte chunks gives the same bytes.
    const pieces: Buffer[] = [];
    for (let i = 0; i < response.length; i += 3) pieces.push(response.subarray(i, i + 3));
    expect(Buffer.concat(processor.processChunks(batch, pieces))).toEqual(whole);
    out.push(whole);
  }
  return { output: Buffer.concat(out).toString(), sent };
}

/** A CSV model: one score per line, the line's length. */
const lengths = (nl: boolean) => (body: string) =>
  body
    .split('\n')
    .map((l) => l.length)
    .join('\n') + (nl ? '\n' : '');

describe('a response in chunks', () => {
  it('passes the chunks through uncopied when nothing needs the response whole, adding only the Line newline', async () => {
    const o: DataPlaneOptions = { ...CSV_LINE, batchStrategy: 'MultiRecord', maxPayloadInMB: 1 };
    const processor = createOutputProcessor(o);
    const [batch] = await collect(readMiniBatches(chunked(Buffer.from('a\nb\n'), 5), o));
    const chunks = [Buffer.from('A\n'), Buffer.from('B')];
    const out = processor.processChunks(batch as never, chunks);
    expect(out[0]).toBe(chunks[0]);
    expect(out[1]).toBe(chunks[1]);
    expect(Buffer.concat(out).toString()).toBe('A\nB\n');
    const ended = [Buffer.from('A\nB\n')];
    expect(processor.processChunks(batch as never, ended)).toEqual(ended);
  });
});

describe('AssembleWith', () => {
  it.each([
    ['Line', 'SingleRecord', 'no trailing newline', false, '3\n3\n3\n'],
    ['Line', 'SingleRecord', 'a trailing newline', true, '3\n3\n3\n'],
    ['Line', 'MultiRecord', 'no trailing newline', false, '3\n3\n3\n'],
    ['Line', 'MultiRecord', 'a trailing newline', true, '3\n3\n3\n'],
    ['None', 'SingleRecord', 'no trailing newline', false, '333'],
    ['None', 'MultiRecord', 'a trailing newline', true, '3\n3\n3\n'],
  ] as const)('%s with %s and responses with %s', async (assembleWith, batchStrategy, _d, nl, expected) => {
    const { output } = await transform({ assembleWith, batchStrategy }, 'a,b\nc,d\ne,f\n', lengths(nl));
    expect(output).toBe(expected);
  });

  it('Line ends every mini-batch response with exactly one newline (one line per batch when the model returns one)', async () => {
    const { output, sent } = await transform(
      { maxPayloadInMB: 1 },
      `${'x'.repeat(600_000)}\n${'y'.repeat(600_000)}\n`,
      () => 'ok',
    );
    expect(sent).toHaveLength(2);
    expect(output).toBe('ok\nok\n');
  });

  it('passes a response through untouched when nothing needs records', () => {
    const p = createOutputProcessor({ ...CSV_LINE });
    const response = Buffer.from('1\n2\n');
    const batch = { count: 2, firstOffset: 0 } as never;
    expect(p.process(batch, response)).toBe(response);
  });

  it('an empty response is an empty line with Line', async () => {
    const { output } = await transform({ batchStrategy: 'SingleRecord' }, 'a\nb\n', () => '');
    expect(output).toBe('\n\n');
  });

  it.each([
    ['Line', ['ab', 'c'], 'abc\n'],
    ['Line', ['ab', 'c\n'], 'abc\n'],
    ['Line', [], '\n'],
    ['None', ['ab', 'c'], 'abc'],
  ] as const)('streams %s responses: %j', async (assembleWith, chunks, expected) => {
    const p = createOutputProcessor({ ...CSV_LINE, splitType: 'None', maxPayloadInMB: 0, assembleWith });
    const source = async function* () {
      for (const c of chunks) yield Buffer.from(c);
    };
    expect(Buffer.concat(await collect(p.processStream(source()))).toString()).toBe(expected);
  });
});

describe('CSV filters and join', () => {
  const input = 'id1,1.5,2.5\r\nid2,"3,5",4.5\r\n';

  it('InputFilter $[1:] drops the ID column from what the model sees', async () => {
    const { sent } = await transform({ inputFilter: '$[1:]' }, input, lengths(false));
    expect(sent).toEqual(['1.5,2.5\n"3,5",4.5']);
  });

  it('JoinSource Input appends the output to the input row, and OutputFilter picks columns of both', async () => {
    const model = (body: string) =>
      body
        .split('\n')
        .map((l) => `p${l.length}`)
        .join('\n');
    const opts = { inputFilter: '$[1:]', joinSource: 'Input', assembleWith: 'Line' } as const;
    expect((await transform(opts, input, model)).output).toBe('id1,1.5,2.5,p7\nid2,"3,5",4.5,p9\n');
    expect((await transform({ ...opts, outputFilter: '$[0,-1]' }, input, model)).output).toBe(
      'id1,p7\nid2,p9\n',
    );
    const single = await transform(
      { ...opts, batchStrategy: 'SingleRecord', outputFilter: '$[0,-1]' },
      input,
      model,
    );
    expect(single.output).toBe('id1,p7\nid2,p9\n');
  });

  it('OutputFilter alone selects columns of the model output', async () => {
    const { output } = await transform({ outputFilter: '$[1]' }, 'a\nb\n', (b) => b.replace(/\w/g, 'x,$&,y'));
    expect(output).toBe('a\nb\n');
  });

  it('an index outside the row fails the object, naming the record offset', async () => {
    const e = await rejection(transform({ inputFilter: '$[3]' }, 'a,b,c,d\na,b\n', (b) => b));
    expect(e).toBeInstanceOf(DataError);
    expect(e.offset).toBe(8);
    expect(e.message).toBe(
      'InputFilter $[3] cannot apply to the record at byte offset 8: index 3 is out of range for 2 fields',
    );
  });

  it('a response with the wrong number of lines fails, naming the mini-batch', async () => {
    const e = await rejection(transform({ joinSource: 'Input' }, 'a\nb\nc\n', () => '1\n2\n'));
    expect(e.message).toBe(
      "the model's response to the mini-batch of 3 records starting at byte offset 0 has 2 lines; expected 3 lines, one output per record",
    );
  });
});

describe('JSON filters and join', () => {
  const doc = '{"id":1,"features":[0.5,1.5],"name":"x"}';

  it('SplitType None: InputFilter, join under SageMakerOutput, OutputFilter', async () => {
    const model = (body: string) => JSON.stringify({ score: JSON.parse(body).length });
    const opts = {
      splitType: 'None',
      contentType: 'application/json',
      inputFilter: '$.features',
      joinSource: 'Input',
    } as const;
    const joined = await transform(opts, doc, model);
    expect(joined.sent).toEqual(['[0.5,1.5]']);
    expect(joined.output).toBe('{"id":1,"features":[0.5,1.5],"name":"x","SageMakerOutput":{"score":2}}\n');
    const filtered = await transform({ ...opts, outputFilter: "$['id','SageMakerOutput']" }, doc, model);
    expect(filtered.output).toBe('{"id":1,"SageMakerOutput":{"score":2}}\n');
  });

  it('an input that is not an object becomes SageMakerInput', async () => {
    const { output } = await transform(
      { splitType: 'None', contentType: 'application/json', joinSource: 'Input' },
      '[1,2]',
      () => '0.75',
    );
    expect(output).toBe('{"SageMakerInput":[1,2],"SageMakerOutput":0.75}\n');
  });

  it.each(['application/jsonlines', 'application/x-jsonlines'])(
    'JSON Lines (%s) with MultiRecord: one output line per record, joined per record',
    async (contentType) => {
      const input = '{"id":1,"x":"ab"}\n{"id":2,"x":"c"}\n"bare"\n';
      const model = (body: string) =>
        body
          .split('\n')
          .map((l) => JSON.stringify({ n: l.length }))
          .join('\n');
      const { output, sent } = await transform(
        { contentType, inputFilter: '$.x', joinSource: 'Input' },
        input.slice(0, 35),
        model,
      );
      expect(sent).toEqual(['"ab"\n"c"']);
      expect(output).toBe(
        '{"id":1,"x":"ab","SageMakerOutput":{"n":4}}\n{"id":2,"x":"c","SageMakerOutput":{"n":3}}\n',
      );
      const bare = await transform({ contentType, joinSource: 'Input' }, input, model);
      expect(bare.output.split('\n')[2]).toBe('{"SageMakerInput":"bare","SageMakerOutput":{"n":6}}');
    },
  );

  it('application/json MultiRecord accepts a JSON array with one element per record', async () => {
    const input = '{"a":1}\n{"a":2}\n';
    const model = (body: string) => JSON.stringify(body.split('\n').map((l) => JSON.parse(l).a * 10));
    const { output } = await transform(
      { contentType: 'application/json', joinSource: 'Input' },
      input,
      model,
    );
    expect(output).toBe('{"a":1,"SageMakerOutput":10}\n{"a":2,"SageMakerOutput":20}\n');
  });

  it('a CSV answer to JSON input is joined as a string', async () => {
    const { output } = await transform(
      { contentType: 'application/jsonlines', accept: 'text/csv', joinSource: 'Input' },
      '{"a":1}\n',
      () => '0.5,0.5\n',
    );
    expect(output).toBe('{"a":1,"SageMakerOutput":"0.5,0.5"}\n');
  });

  it.each([
    [
      'invalid JSON input with an InputFilter',
      { inputFilter: '$.a' },
      '{"a":1}\n{oops\n',
      (): string => '1',
      8,
      /InputFilter \$\.a cannot apply to the record at byte offset 8: it is not valid JSON/,
    ],
    [
      'invalid JSON output with a join',
      { joinSource: 'Input' },
      '{"a":1}\n',
      (): string => 'nope',
      0,
      /model output for the record is not valid JSON \(.*\): "nope" \(record at byte offset 0\)/,
    ],
    [
      'non-UTF-8 bytes in a JSON record with an InputFilter',
      { inputFilter: '$.a' },
      Buffer.concat([Buffer.from('{"a":1}\n{"a":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]),
      (): string => '1',
      8,
      /InputFilter \$\.a cannot apply to the record at byte offset 8: it is not valid UTF-8 \(the first bad byte is byte 9 of the record\)/,
    ],
    [
      'non-UTF-8 bytes in a JSON record with a join',
      { joinSource: 'Input' },
      Buffer.concat([Buffer.from('{"t":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]),
      (): string => '1',
      0,
      /JoinSource Input: the input record is not valid UTF-8 \(the first bad byte is byte 6 of the record\) \(record at byte offset 0\)/,
    ],
    [
      'a missing key in the OutputFilter',
      { joinSource: 'Input', outputFilter: '$.b' },
      '{"a":1}\n',
      (): string => '1',
      0,
      /OutputFilter \$\.b cannot apply to the joined record at byte offset 0: no key 'b'/,
    ],
  ] as const)(
    '%s fails the object, naming the record offset',
    async (_name, extra, input, model, offset, message) => {
      const e = await rejection(transform({ contentType: 'application/jsonlines', ...extra }, input, model));
      expect(e).toBeInstanceOf(DataError);
      expect(e.offset).toBe(offset);
      expect(e.message).toMatch(message);
    },
  );
});

describe('CsvHeader Repeat responses', () => {
  const input = 'id,x\n1,a\n2,b\n';

  it.each([
    ['one line per row', () => '1\n1\n', '1\n1\n'],
    ['a header line first', () => 'score\n1\n1\n', '1\n1\n'],
  ])('keeps only the rows outputs when the model returns %s', async (_name, model, expected) => {
    expect((await transform({ csvHeader: 'Repeat' }, input, model)).output).toBe(expected);
    expect((await transform({ csvHeader: 'Repeat', joinSource: 'Input' }, input, model)).output).toBe(
      '1,a,1\n2,b,1\n',
    );
  });

  it('fails any other number of lines', async () => {
    const e = await rejection(transform({ csvHeader: 'Repeat' }, input, () => '1\n'));
    expect(e.message).toMatch(
      /has 1 lines; expected 2 lines \(or 3 with a header line first, for CsvHeader Repeat\)/,
    );
  });
});

describe('firstInvalidUtf8', () => {
  it.each([
    ['ASCII', [0x61, 0x62], 2],
    ['valid 2, 3 and 4 byte sequences', [0xc3, 0xa9, 0xe2, 0x9c, 0x93, 0xf0, 0x9f, 0x98, 0x80], 9],
    ['a lone continuation byte', [0x61, 0x80], 1],
    ['a Latin-1 é', [0x63, 0xe9, 0x22], 1],
    ['an overlong encoding', [0xc0, 0xaf], 0],
    ['a UTF-16 surrogate', [0x61, 0xed, 0xa0, 0x80], 1],
    ['a sequence cut short at the end', [0x61, 0xe2, 0x9c], 1],
    ['a code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80], 0],
  ])('%s: %j → %i, and agrees with Buffer isUtf8', (_name, bytes, expected) => {
    const b = Buffer.from(bytes);
    expect(firstInvalidUtf8(b)).toBe(expected);
    expect(isUtf8(b)).toBe(expected === b.length);
  });
});

describe('GenerateInferenceId', () => {
  const TIME = '2022-08-30T00:49:15Z';
  const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}';

  /** Like `transform`, without comparing the chunked path: every call draws fresh IDs. */
  async function run(opts: Partial<DataPlaneOptions>, input: string, model: (body: string) => string) {
    const o: DataPlaneOptions = { ...CSV_LINE, inferenceTime: TIME, ...opts };
    const processor = createOutputProcessor(o);
    const out: Buffer[] = [];
    for (const batch of buffered(await collect(readMiniBatches(chunked(Buffer.from(input), 5), o)))) {
      out.push(processor.process(batch, Buffer.from(model(batch.body.toString()))));
    }
    return Buffer.concat(out).toString();
  }

  const ids = (output: string, re: RegExp) =>
    output
      .split('\n')
      .filter(Boolean)
      .map((l) => re.exec(l)![1]!);

  it('CSV: each record output gets ,<uuid>,<job time>, the same time and a different id per record', async () => {
    const output = await run({ maxPayloadInMB: 1 }, 'a,1\nbb,2\nccc,3\n', (body) =>
      body
        .split('\n')
        .filter(Boolean)
        .map((l) => ` 0.${l.length}`)
        .join('\n'),
    );
    const lines = output.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(3);
    const re = new RegExp(`^ 0\\.(\\d),(${UUID}),${TIME}$`);
    expect(lines.map((l) => re.exec(l)?.[1])).toEqual(['3', '4', '5']);
    const got = ids(output, new RegExp(`,(${UUID}),`));
    expect(new Set(got).size).toBe(3);
  });

  it('CSV with processChunks: per-record pieces too, and the pass-through path is not taken', async () => {
    const o: DataPlaneOptions = { ...CSV_LINE, inferenceTime: TIME };
    const processor = createOutputProcessor(o);
    const [batch] = buffered(await collect(readMiniBatches(chunked(Buffer.from('x\ny\n'), 5), o)));
    const out = Buffer.concat(processor.processChunks(batch!, [Buffer.from('1\n'), Buffer.from('2\n')]));
    expect(out.toString()).toMatch(new RegExp(`^1,${UUID},${TIME}\\n2,${UUID},${TIME}\\n$`));
  });

  it("JSON Lines: the two members go before each object's closing brace, its bytes otherwise unchanged", async () => {
    const output = await run(
      { contentType: 'application/jsonlines' },
      '{"a":1}\n{"a":2}\n{"a":3}\n',
      (body) =>
        body
          .split('\n')
          .filter(Boolean)
          .map((_, i) => (i === 0 ? '{ "output": 1.10 , "s":"é" }' : i === 1 ? '{}' : '0.5e0'))
          .join('\n'),
    );
    const lines = output.split('\n');
    expect(lines[0]).toMatch(
      new RegExp(
        `^\\{ "output": 1\\.10 , "s":"é" ,"SageMakerInferenceId":"${UUID}","SageMakerInferenceTime":"${TIME}"\\}$`,
      ),
    );
    expect(lines[1]).toMatch(
      new RegExp(`^\\{"SageMakerInferenceId":"${UUID}","SageMakerInferenceTime":"${TIME}"\\}$`),
    );
    // A bare value has no members to add to: it is wrapped as JoinSource Input wraps one.
    expect(lines[2]).toMatch(
      new RegExp(
        `^\\{"SageMakerOutput":0\\.5e0,"SageMakerInferenceId":"${UUID}","SageMakerInferenceTime":"${TIME}"\\}$`,
      ),
    );
    for (const l of lines.filter(Boolean)) expect(JSON.parse(l).SageMakerInferenceTime).toBe(TIME);
    expect(new Set(ids(output, /"SageMakerInferenceId":"([^"]+)"/)).size).toBe(3);
  });

  it('application/json MultiRecord: each element of the response array becomes a record with its id', async () => {
    const output = await run(
      { contentType: 'application/json' },
      '{"a":1}\n{"a":2}\n',
      () => '[{"p":1},{"p":2}]',
    );
    const records = output
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(records.map((r) => r.p)).toEqual([1, 2]);
    expect(records.every((r) => r.SageMakerInferenceTime === TIME)).toBe(true);
  });

  it('after JoinSource Input: the joined record gets the id (CSV row and JSON object)', async () => {
    const csv = await run({ joinSource: 'Input' }, 'a,1\n', () => '0.9');
    expect(csv).toMatch(new RegExp(`^a,1,0\\.9,${UUID},${TIME}\\n$`));
    const json = await run(
      { contentType: 'application/jsonlines', joinSource: 'Input' },
      '{"a":1}\n',
      () => '7',
    );
    expect(json).toMatch(
      new RegExp(
        `^\\{"a":1,"SageMakerOutput":7,"SageMakerInferenceId":"${UUID}","SageMakerInferenceTime":"${TIME}"\\}\\n$`,
      ),
    );
  });

  it('an output record that is not JSON fails naming the record offset', async () => {
    const err = await rejection(
      run({ contentType: 'application/jsonlines' }, '{"a":1}\n{"a":2}\n', () => '{"ok":1}\n{oops'),
    );
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toMatch(
      /GenerateInferenceId: the output record at byte offset 8 is not valid JSON/,
    );
  });

  it("the time is SageMaker's form, UTC to the second", () => {
    expect(inferenceTime('2026-12-03T15:28:15.987Z')).toBe('2026-12-03T15:28:15Z');
    expect(() => inferenceTime('yesterday')).toThrow(/not a time/);
  });

  it('the data plane refuses output it cannot append to', () => {
    expect(() => createOutputProcessor({ ...CSV_LINE, inferenceTime: TIME, contentType: undefined })).toThrow(
      /GenerateInferenceId needs CSV, JSON or JSON Lines output/,
    );
  });
});
