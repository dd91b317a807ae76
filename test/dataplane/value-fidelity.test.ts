import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileFilter } from '../../src/dataplane/filter';
import type { MiniBatch } from '../../src/dataplane/batch';
import { readMiniBatches } from '../../src/dataplane/input';
import type { DataPlaneOptions } from '../../src/dataplane/options';
import { createOutputProcessor } from '../../src/dataplane/output';
import { JsonTape } from '../../src/jsonpath/json-text';
import { buffered, CSV_LINE, chunked, collect } from './helpers';

/**
 * Whatever a filter keeps and whatever a join copies appears exactly as written in the record: the
 * data plane selects and joins on spans of the record's bytes, so numbers JavaScript cannot hold
 * (12345678901234567891, 9007199254740993), trailing zeros (1.50), exponents (1e2), escapes
 * (\u00e9) and whitespace come through unchanged (issue 13 §1).
 */

// ── JSON text, generated as text ────────────────────────────────────────────────────────────────
// No `\n` in whitespace: the records go through JSON Lines files, one per line.
const ws = fc.constantFrom('', '', ' ', '  ', '\t', ' \t ');
const numberText = fc.oneof(
  fc.constantFrom(
    '12345678901234567891',
    '9007199254740993',
    '1.50',
    '1e2',
    '1E+2',
    '-0',
    '0.0',
    '-1.250e-10',
    '100000000000000000000000000001',
    '3.141592653589793238462643383279',
  ),
  fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map(String),
  fc
    .tuple(
      fc.integer({ min: -99999, max: 99999 }),
      fc.stringMatching(/^[0-9]{1,6}$/),
      fc.constantFrom('', 'e5', 'E-3', 'e+0'),
    )
    .map(([i, f, e]) => `${i}.${f}${e}`),
);
const stringText = fc.oneof(
  fc.constantFrom(
    '"\\u00e9"',
    '"\\ud83d\\ude00"',
    '"a\\/b"',
    '"tab\\t"',
    '"é"',
    '""',
    '"\\"q\\""',
    '"\\u0000"',
  ),
  fc.string({ maxLength: 8 }).map((s) => JSON.stringify(s)),
);
const scalarText = fc.oneof(numberText, stringText, fc.constantFrom('true', 'false', 'null'));
/** Member names that are never `f`, `id`, `arr` or `SageMakerOutput`, the names the tests select. */
const otherKey = fc
  .oneof(
    fc.constantFrom('"\\u0067"', '"x y"', '"é"', '"_"', '"1"'),
    fc.string({ maxLength: 5 }).map((s) => JSON.stringify(s)),
  )
  .filter((k) => !['f', 'id', 'arr', 'SageMakerOutput'].includes(JSON.parse(k)));

const { value: valueText } = fc.letrec<{ value: string; array: string; object: string }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalarText, tie('array'), tie('object')),
  array: fc
    .tuple(fc.array(fc.tuple(ws, tie('value'), ws), { maxLength: 4 }), ws)
    .map(([items, w]) =>
      items.length === 0 ? `[${w}]` : `[${items.map(([a, v, b]) => a + v + b).join(',')}]`,
    ),
  object: fc
    .tuple(fc.array(fc.tuple(ws, otherKey, ws, ws, tie('value'), ws), { maxLength: 4 }), ws)
    .map(([members, w]) =>
      members.length === 0
        ? `{${w}}`
        : `{${members.map(([a, k, b, c, v, d]) => `${a}${k}${b}:${c}${v}${d}`).join(',')}}`,
    ),
}));

/** An object's text made of members (name text, value text), with random whitespace around each piece. */
const objectOf = (members: fc.Arbitrary<Array<[string, string]>>) =>
  fc.tuple(members, fc.infiniteStream(ws), ws, ws).map(([ms, spaces, lead, trail]) => {
    const w = () => spaces.next().value as string;
    const pieces = ms.map(([k, v]) => `${w()}${k}${w()}:${w()}${v}`);
    const body = pieces.join(`${w()},`);
    // Where the last member's value ends: a join inserts its member there.
    const lastValueEnd = 1 + body.length;
    return { text: `${lead}{${body}${w()}}${trail}`, lastValueEnd: lead.length + lastValueEnd, lead, trail };
  });

/** Objects with a member `f` somewhere among others. */
const withF = fc
  .tuple(fc.array(fc.tuple(otherKey, valueText), { maxLength: 4 }), valueText, fc.nat())
  .chain(([others, f, at]) => {
    const members = [...others];
    members.splice(at % (members.length + 1), 0, ['"f"', f]);
    return objectOf(fc.constant(members)).map((o) => ({ ...o, f }));
  });

const RUNS = { numRuns: 300 };

describe('JSON text scanner', () => {
  it('accepts exactly what JSON.parse accepts (generated JSON and mutations of it)', () => {
    const tape = new JsonTape();
    const mutated = fc
      .tuple(
        valueText,
        fc.nat(),
        fc.constantFrom('', ',', ']', '}', '"', '\\', '-', '.', 'e', '0', ' ', 'x', '\u0001'),
      )
      .map(([t, at, c]) => {
        const i = at % (t.length + 1);
        return t.slice(0, i) + c + t.slice(i + (at % 2));
      });
    fc.assert(
      fc.property(fc.oneof(valueText, mutated), (text) => {
        let parsed = true;
        try {
          JSON.parse(text);
        } catch {
          parsed = false;
        }
        let scanned = true;
        try {
          tape.scan(Buffer.from(text));
        } catch {
          scanned = false;
        }
        expect(scanned).toBe(parsed);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('filters keep the selected values as written', () => {
  it('InputFilter $.f gives the value of f byte for byte', () => {
    const filter = compileFilter('$.f', 'jsonlines', 'InputFilter')!;
    fc.assert(
      fc.property(withF, ({ text, f }) => {
        expect(filter(Buffer.from(text), 0).toString()).toBe(f);
      }),
      RUNS,
    );
  });

  it("OutputFilter $['id','f'] builds an object of the two members, each as written", () => {
    const filter = compileFilter("$['id','f']", 'json', 'OutputFilter')!;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(otherKey, valueText), { maxLength: 3 }),
        valueText,
        valueText,
        (others, id, f) => {
          const text = `{${[...others, ['"f"', f], ['"id"', id]].map(([k, v]) => `${k} : ${v}`).join(' , ')}}`;
          expect(filter(Buffer.from(text), 0).toString()).toBe(`{"id":${id},"f":${f}}`);
        },
      ),
      RUNS,
    );
  });

  it('index, slice and wildcard selections copy the elements as written', () => {
    const pick = (path: string, text: string) =>
      compileFilter(path, 'json', 'OutputFilter')!(Buffer.from(text), 0).toString();
    fc.assert(
      fc.property(fc.array(valueText, { minLength: 1, maxLength: 6 }), ws, (items, w) => {
        const text = `{"arr":[${items.map((v) => `${w}${v}${w}`).join(',')}]}`;
        expect(pick('$.arr[0]', text)).toBe(items[0]);
        expect(pick('$.arr[-1]', text)).toBe(items[items.length - 1]);
        expect(pick('$.arr[*]', text)).toBe(`[${items.join(',')}]`);
        expect(pick('$.arr[1:]', text)).toBe(`[${items.slice(1).join(',')}]`);
        expect(pick('$.arr[0,-1]', text)).toBe(`[${items[0]},${items[items.length - 1]}]`);
      }),
      RUNS,
    );
  });

  it('the reported values come through an InputFilter unchanged', () => {
    const filter = compileFilter('$.f', 'jsonlines', 'InputFilter')!;
    for (const v of [
      '12345678901234567891',
      '9007199254740993',
      '1.50',
      '1e2',
      '"\\u00e9"',
      '[1.0, 2.50 ,3e0]',
    ]) {
      expect(filter(Buffer.from(`{"id": 1, "f": ${v}}`), 0).toString()).toBe(v);
    }
  });
});

/** Runs JSON Lines through the data plane; `model` answers each body (records joined by `\n`). */
async function transform(opts: Partial<DataPlaneOptions>, input: string, model: (body: string) => string) {
  const o: DataPlaneOptions = { ...CSV_LINE, contentType: 'application/jsonlines', ...opts };
  const processor = createOutputProcessor(o);
  const out: Buffer[] = [];
  for (const batch of buffered(await collect(readMiniBatches(chunked(Buffer.from(input), 7), o)))) {
    out.push(processor.process(batch, Buffer.from(model(batch.body.toString()))));
  }
  return Buffer.concat(out).toString();
}

/** A model that answers every record with the next of `outputs`, one line per record. */
const answers = (outputs: readonly string[]) => {
  let k = 0;
  return (body: string) =>
    body
      .split('\n')
      .map(() => outputs[k++ % outputs.length])
      .join('\n');
};

describe('JoinSource Input copies the input record and the output as written', () => {
  const strategies = fc.constantFrom('SingleRecord' as const, 'MultiRecord' as const);

  it('an object input gets SageMakerOutput after its last member; everything else is its own bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(withF, { minLength: 1, maxLength: 5 }),
        fc.array(valueText, { minLength: 1, maxLength: 3 }),
        strategies,
        async (records, outputs, batchStrategy) => {
          const input = `${records.map((r) => r.text).join('\n')}\n`;
          const output = await transform({ joinSource: 'Input', batchStrategy }, input, answers(outputs));
          const expected = records.map((r, i) => {
            const t = r.text.slice(r.lead.length, r.text.length - r.trail.length);
            const at = r.lastValueEnd - r.lead.length;
            return `${t.slice(0, at)},"SageMakerOutput":${outputs[i % outputs.length]}${t.slice(at)}\n`;
          });
          expect(output).toBe(expected.join(''));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('with InputFilter $.f and OutputFilter $.id, the id comes out exactly as written (issue 13)', async () => {
    const ids = ['12345678901234567891', '9007199254740993', '1.50', '1e2', '"\\u00e9"', '-0'];
    const input = ids.map((id) => `{"id": ${id}, "f": [1.0, 2]}`).join('\n');
    const output = await transform(
      { joinSource: 'Input', inputFilter: '$.f', outputFilter: '$.id' },
      input,
      answers(['0.5']),
    );
    expect(output).toBe(ids.map((id) => `${id}\n`).join(''));
  });

  it('a value that is not an object is kept under SageMakerInput, as written', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(scalarText, valueText), valueText, async (record, out) => {
        fc.pre(!/^\s*\{/.test(record));
        const output = await transform({ joinSource: 'Input' }, `${record}\n`, answers([out]));
        expect(output).toBe(`{"SageMakerInput":${record.trim()},"SageMakerOutput":${out}}\n`);
      }),
      RUNS,
    );
  });

  it('an input that already has SageMakerOutput gets its value replaced in place', async () => {
    const output = await transform(
      { joinSource: 'Input' },
      '{"a": 1.50, "SageMakerOutput": 7, "b": 1e2}\n',
      answers(['[0.10]']),
    );
    expect(output).toBe('{"a": 1.50, "SageMakerOutput": [0.10], "b": 1e2}\n');
  });

  it('a JSON array response is split into its elements as written', async () => {
    const output = await transform(
      { joinSource: 'Input', accept: 'application/json' },
      '{"id":12345678901234567891}\n{"id":2}\n',
      () => '[ 1.50 , {"p": 1e2} ]',
    );
    expect(output).toBe(
      '{"id":12345678901234567891,"SageMakerOutput":1.50}\n{"id":2,"SageMakerOutput":{"p": 1e2}}\n',
    );
  });
});

// ── CSV keeps field text the same way ───────────────────────────────────────────────────────────
const csvField = fc.oneof(
  numberText,
  fc.constantFrom('"a,b"', '"say ""hi"""', '', ' 1.50 ', 'é', '"x\ty"'),
  fc.stringMatching(/^[a-z0-9. ]{0,6}$/),
);
const csvRow = fc.array(csvField, { minLength: 2, maxLength: 6 });

describe('CSV filters and joins keep field text', () => {
  it('InputFilter $[1:] and $[0,-1] keep the fields as written', () => {
    const rest = compileFilter('$[1:]', 'csv', 'InputFilter')!;
    const ends = compileFilter('$[0,-1]', 'csv', 'InputFilter')!;
    fc.assert(
      fc.property(csvRow, (fields) => {
        const row = Buffer.from(fields.join(','));
        expect(rest(row, 0).toString()).toBe(fields.slice(1).join(','));
        expect(ends(row, 0).toString()).toBe(`${fields[0]},${fields[fields.length - 1]}`);
      }),
      RUNS,
    );
  });

  it('JoinSource Input appends the output to the row exactly as written', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(csvRow, { minLength: 1, maxLength: 5 }),
        fc.array(
          csvField.filter((f) => f !== ''),
          { minLength: 1, maxLength: 3 },
        ),
        fc.constantFrom('SingleRecord' as const, 'MultiRecord' as const),
        async (rows, outputs, batchStrategy) => {
          const input = `${rows.map((r) => r.join(',')).join('\n')}\n`;
          const output = await transform(
            { contentType: 'text/csv', joinSource: 'Input', inputFilter: '$[1:]', batchStrategy },
            input,
            answers(outputs),
          );
          expect(output).toBe(rows.map((r, i) => `${r.join(',')},${outputs[i % outputs.length]}\n`).join(''));
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("a join's output line does not depend on batching", () => {
  /** Halves `batch` down to single records, the way the sidecar isolates records on 413 or a timeout. */
  const singles = (batch: MiniBatch): MiniBatch[] =>
    batch.count === 1 ? [batch] : batch.split().flatMap((b) => singles(b));

  it.each([
    ['application/json', 'a JSON array per mini-batch', (outs: string[]) => ` [ ${outs.join(' , ')} ] `],
    ['application/jsonlines', 'one line per record', (outs: string[]) => `${outs.join('\n')}\n`],
    ['text/csv', 'one CSV line per record', (outs: string[]) => outs.join('\n')],
  ])('%s (%s): every record alone in its mini-batch gives the same bytes', async (accept, _how, answer) => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(withF, { minLength: 1, maxLength: 6 }),
        fc.array(accept === 'text/csv' ? csvField.filter((f) => f !== '') : valueText, {
          minLength: 1,
          maxLength: 3,
        }),
        async (records, outputs) => {
          const o: DataPlaneOptions = {
            ...CSV_LINE,
            contentType: 'application/jsonlines',
            accept,
            joinSource: 'Input',
          };
          const processor = createOutputProcessor(o);
          const input = Buffer.from(`${records.map((r) => r.text).join('\n')}\n`);
          const [batch] = buffered(await collect(readMiniBatches(chunked(input, 7), o)));
          const outputOf = (b: MiniBatch, first: number) =>
            processor.process(
              b,
              Buffer.from(
                answer(Array.from({ length: b.count }, (_, i) => outputs[(first + i) % outputs.length]!)),
              ),
            );
          const together = outputOf(batch!, 0).toString();
          const apart = singles(batch!)
            .map((b, i) => outputOf(b, i).toString())
            .join('');
          expect(apart).toBe(together);
          expect(together.split('\n')).toHaveLength(records.length + 1);
        },
      ),
      { numRuns: 100 },
    );
  });
});
