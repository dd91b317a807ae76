import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { MiniBatch } from '../../src/dataplane/batch';
import { readMiniBatches } from '../../src/dataplane/input';
import type { DataPlaneOptions } from '../../src/dataplane/options';
import { createOutputProcessor } from '../../src/dataplane/output';
import type { ShardWindow } from '../../src/dataplane/record';
import { shardReadStart } from '../../src/dataplane/shard';
import { buffered, CSV_LINE, collect, cutAt } from './helpers';

/**
 * Sharding never changes an output byte (issue 16 §8), and empty Line records are records at every
 * mini-batch and shard boundary (issue 16 §7). Shards are cut on the grid the packer closes
 * mini-batches on (`shardGridBytes`), as the planner cuts them; the grid here is a few bytes so that
 * small inputs cross it often.
 */

type Model = (body: string, count: number) => string;
const MODELS: Record<string, Model> = {
  echo: (body) => body,
  'echo + newline': (body) => `${body}\n`,
  'one line per record': (body) =>
    body
      .split('\n')
      .map((l) => `<${l}>`)
      .join('\n'),
  'one line per mini-batch': (_body, count) => `${count} records\n`,
};

/** Runs the object, or one shard of it, through the data plane. */
async function run(
  file: Buffer,
  opts: DataPlaneOptions,
  model: Model,
  window?: ShardWindow,
): Promise<{ output: string; records: number }> {
  const processor = createOutputProcessor(opts);
  const from = window ? shardReadStart('Line', window) : 0;
  const source = file.subarray(from);
  const cuts: number[] = [];
  for (let i = 5; i < source.length; i += 5) cuts.push(i);
  const batches: MiniBatch[] = buffered(
    await collect(readMiniBatches(cutAt(source, cuts), opts, window ? { window } : undefined)),
  );
  const out = batches.map((b) =>
    processor.process(b, Buffer.from(model(b.body.toString('latin1'), b.count), 'latin1')),
  );
  return {
    output: Buffer.concat(out).toString('latin1'),
    records: batches.reduce((n, b) => n + b.count, 0),
  };
}

const line = fc.oneof(
  fc.constant(''),
  fc.string({ unit: fc.constantFrom('a', 'b', '1', ','), minLength: 1, maxLength: 6 }),
);

describe('sharding never changes an output byte', () => {
  it('every shard cut on the grid, every AssembleWith and BatchStrategy, with empty lines (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(line, { minLength: 1, maxLength: 20 }),
        fc.boolean(),
        fc.integer({ min: 3, max: 24 }),
        fc.array(fc.nat({ max: 40 }), { maxLength: 4 }),
        fc.constantFrom('None' as const, 'Line' as const),
        fc.constantFrom('SingleRecord' as const, 'MultiRecord' as const),
        fc.constantFrom(...Object.keys(MODELS)),
        fc.constantFrom(undefined, '$[0]'),
        async (lines, trailing, grid, cutSteps, assembleWith, batchStrategy, modelName, inputFilter) => {
          const file = Buffer.from(lines.join('\n') + (trailing ? '\n' : ''), 'latin1');
          const opts: DataPlaneOptions = {
            ...CSV_LINE,
            assembleWith,
            batchStrategy,
            inputFilter,
            batchGridBytes: grid,
          };
          const model = MODELS[modelName]!;
          const whole = await run(file, opts, model);
          const points = [...new Set(cutSteps.map((k) => k * grid))]
            .filter((p) => p > 0 && p < file.length)
            .sort((a, b) => a - b);
          const bounds = [0, ...points, file.length];
          let sharded = '';
          let records = 0;
          for (let i = 1; i < bounds.length; i++) {
            const part = await run(file, opts, model, { start: bounds[i - 1]!, end: bounds[i]! });
            sharded += part.output;
            records += part.records;
          }
          expect(sharded).toBe(whole.output);
          expect(records).toBe(whole.records);
          // One record per line of the input, empty lines included.
          expect(whole.records).toBe(lines.length - (trailing || lines.at(-1) !== '' ? 0 : 1));
          if (assembleWith === 'Line' && modelName !== 'one line per mini-batch') {
            expect(whole.output.split('\n').length - 1, 'one output line per record').toBe(whole.records);
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('empty Line records (issue 16 §7)', () => {
  const file = Buffer.from('a,1\nb,2\n\n');

  it.each([
    ['MultiRecord', 'echo'],
    ['SingleRecord', 'echo'],
    ['MultiRecord', 'echo + newline'],
    ['MultiRecord', 'one line per record'],
  ] as const)('%s, %s model: three records give three lines', async (batchStrategy, modelName) => {
    const { output, records } = await run(file, { ...CSV_LINE, batchStrategy }, MODELS[modelName]!);
    expect(records).toBe(3);
    expect(output.split('\n')).toHaveLength(4);
    if (modelName === 'echo') expect(output).toBe('a,1\nb,2\n\n');
  });

  it('JoinSource Input joins the empty record too', async () => {
    const { output } = await run(file, { ...CSV_LINE, joinSource: 'Input' }, MODELS.echo!);
    expect(output).toBe('a,1,a,1\nb,2,b,2\n,\n');
  });
});
