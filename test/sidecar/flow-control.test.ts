import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { Gauge, MemoryBudget, partitionFlow, Semaphore } from '../../containers/sidecar/src/flow-control';
import { runLocalJob } from '../../src/local/runner';
import { FileStorage } from '../../src/storage/file';
import type { StartedModel } from '../fixtures/models/start';
import { makeTempDir, type TempDir } from '../support/tmp';
import { type LogLine, model, recordedRequests, SidecarFixture, upper } from './harness';

// How a partition shares its invocation slots and its memory budget across objects: the behaviour
// behind the benchmark's smallObjectsSaturation and modelSaturation (docs/PERFORMANCE.md). These
// tests check what happens (how many requests the model had at once, how many mini-batches were
// packed ahead, what was written), never how long it took.

describe('flow-control primitives', () => {
  it('MemoryBudget: acquire waits until the bytes fit, in order; take never waits but holds back the next acquire', async ({
    expect,
  }) => {
    const budget = new MemoryBudget(10);
    await budget.acquire(6);
    const order: string[] = [];
    const a = budget.acquire(6).then(() => order.push('a'));
    const b = budget.acquire(1).then(() => order.push('b')); // fits, but waits behind `a` (FIFO)
    await Promise.resolve();
    expect(order).toEqual([]);
    budget.take(3); // a response larger than its reservation: 9 of 10 used
    budget.release(6);
    await Promise.all([a, b]);
    expect(order).toEqual(['a', 'b']);
    expect(budget.used).toBe(10);
    expect(budget.peak).toBe(10);
  });

  it('MemoryBudget: a request larger than the whole budget goes through alone', async ({ expect }) => {
    const budget = new MemoryBudget(10);
    await budget.acquire(25);
    let second = false;
    const next = budget.acquire(1).then(() => {
      second = true;
    });
    await Promise.resolve();
    expect(second).toBe(false);
    budget.release(25);
    await next;
    expect(second).toBe(true);
  });

  it('Semaphore: at most n holders, FIFO, and the peak is recorded', async ({ expect }) => {
    const s = new Semaphore(2);
    await s.acquire();
    await s.acquire();
    let third = false;
    const t = s.acquire().then(() => {
      third = true;
    });
    await Promise.resolve();
    expect(third).toBe(false);
    s.release();
    await t;
    expect([s.held, s.peak]).toEqual([2, 2]);
  });

  it('Semaphore and MemoryBudget serve waiters by rank (the oldest open object first), then in order', async ({
    expect,
  }) => {
    const s = new Semaphore(1);
    await s.acquire(0);
    const order: string[] = [];
    const waits = [
      s.acquire(5).then(() => order.push('young')),
      s.acquire(1).then(() => order.push('old')),
      s.acquire(5).then(() => order.push('young, later')),
    ];
    for (let i = 0; i < 3; i++) {
      s.release();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(waits);
    expect(order).toEqual(['old', 'young', 'young, later']);

    const budget = new MemoryBudget(10);
    await budget.acquire(10, 0);
    const served: string[] = [];
    const b = [
      budget.acquire(4, 3).then(() => served.push('rank 3')),
      budget.acquire(4, 2).then(() => served.push('rank 2')),
    ];
    budget.release(10);
    await Promise.all(b);
    expect(served).toEqual(['rank 2', 'rank 3']);
  });

  it('partitionFlow: MaxConcurrentTransforms slots, 2 × MCT × payload bytes of budget, 2 × MCT objects open', ({
    expect,
  }) => {
    const flow = partitionFlow({ maxConcurrentTransforms: 4, payloadBytes: 6 * 1_048_576 });
    expect(flow.budget.limit).toBe(2 * 4 * 6 * 1_048_576);
    expect(flow.objects).toBe(8);
    expect(flow.packed).toBeInstanceOf(Gauge);
  });
});

let fx: SidecarFixture;
let slow: StartedModel;
let jittery: StartedModel;
/** Answers any body holding SLOWME after 1.5 s, the rest at once. */
let slowTail: StartedModel;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  [fx, slow, jittery, slowTail] = await Promise.all([
    SidecarFixture.start(),
    // Slow enough that requests overlap whenever the sidecar keeps them in flight.
    model({ TEST_MODEL_LATENCY_MS: '250', TEST_MODEL_RECORD_LIMIT: '1000' }, cleanups),
    // Answers out of order: later mini-batches often finish first.
    model({ TEST_MODEL_UPPERCASE: '1', TEST_MODEL_LATENCY_MS: '0-40' }, cleanups),
    model(
      { TEST_MODEL_SLOW_MARKER: 'SLOWME', TEST_MODEL_SLOW_MS: '1500', TEST_MODEL_RECORD_LIMIT: '1000' },
      cleanups,
    ),
  ]);
});
afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
  await fx?.stop();
});

/** JSON Lines records naming their object and index, of varied lengths. */
const jsonLines = (object: string, n: number, pad = 0) =>
  Array.from(
    { length: n },
    (_, i) => `${JSON.stringify({ object, i, text: 'abcdefghij'.repeat(1 + ((i * 7) % 5) + pad) })}\n`,
  ).join('');

const flowLog = (logs: readonly LogLine[]) => logs.find((l) => l.msg === 'flow control');

describe('a partition keeps its slots busy across objects', () => {
  it('many small objects: MaxConcurrentTransforms requests at the model at once, never more, and mini-batches packed ahead of the slots', async ({
    expect,
  }) => {
    const objects = Object.fromEntries(
      Array.from({ length: 16 }, (_, i) => [
        `day-${String(i).padStart(2, '0')}.jsonl`,
        jsonLines(`o${i}`, 10),
      ]),
    );
    const job = await fx.prepare('small-objects', {
      objects,
      request: {
        MaxConcurrentTransforms: 4,
        BatchStrategy: 'MultiRecord',
        MaxPayloadInMB: 1,
        TransformInput: { ContentType: 'application/jsonlines' },
      },
    });
    await fetch(`${slow.url}/debug/requests`, { method: 'DELETE' });
    const run = await fx.run(job, { model: slow, modelPid: false });
    expect(run.code, run.stderr).toBe(0);
    const seen = (await recordedRequests(slow)).filter((r) => r.url === '/invocations');
    expect(seen).toHaveLength(16); // one mini-batch per object
    // One object at a time would never have more than one request at the model.
    expect(Math.max(...seen.map((r) => r.inFlight))).toBe(4);
    const flow = flowLog(run.logs)!;
    expect(flow.invocationsInFlightPeak).toBe(4);
    // Read-ahead: while all four slots were busy, other objects' mini-batches were packed and ready.
    expect(flow.miniBatchesPackedPeak as number).toBeGreaterThan(4);
    expect(flow.budgetPeakBytes as number).toBeLessThanOrEqual(flow.budgetBytes as number);
    const out = await fx.outputs(job);
    expect([...out.keys()].sort()).toEqual(Object.keys(objects).map((k) => `${k}.out`));
    for (const [key, body] of Object.entries(objects)) expect(out.get(`${key}.out`)?.toString()).toBe(body);
  });

  it('read-ahead stays within 2 × MaxConcurrentTransforms × MaxPayloadInMB: full mini-batches wait for outputs to be written', async ({
    expect,
  }) => {
    // ~3.5 MiB in one object, 1 MiB mini-batches, MCT 2: the budget (4 MiB) holds the two bodies in
    // flight and their responses, so no third full mini-batch is packed until an output is written.
    const big = jsonLines('big', 24_000, 3);
    const job = await fx.prepare('read-ahead-bound', {
      objects: { 'big.jsonl': big, 'tiny.jsonl': jsonLines('tiny', 3) },
      request: {
        MaxConcurrentTransforms: 2,
        BatchStrategy: 'MultiRecord',
        MaxPayloadInMB: 1,
        TransformInput: { ContentType: 'application/jsonlines' },
      },
    });
    const run = await fx.run(job, { model: slow, modelPid: false });
    expect(run.code, run.stderr).toBe(0);
    const flow = flowLog(run.logs)!;
    expect(flow.budgetBytes).toBe(2 * 2 * 1_048_576);
    expect(flow.budgetPeakBytes as number).toBeLessThanOrEqual(flow.budgetBytes as number);
    expect(flow.invocationsInFlightPeak).toBe(2);
    expect((await fx.output(job, 'big.jsonl'))?.toString()).toBe(big);
  });

  it('a large object hands its place to the next once its last mini-batch is packed: the next object is sent while the last answer is awaited', async ({
    expect,
  }) => {
    // MCT 2: one large object packed at a time. a's last record holds SLOWME, which the model
    // answers after 1.5 s; b's mini-batches go to the model meanwhile, not after a's output completes.
    const a = `${jsonLines('a', 30_000, 3)}{"object":"a","SLOWME":true}\n`;
    const b = jsonLines('b', 30_000, 3);
    const job = await fx.prepare('large-handover', {
      objects: { 'a.jsonl': a, 'b.jsonl': b },
      request: {
        MaxConcurrentTransforms: 2,
        BatchStrategy: 'MultiRecord',
        MaxPayloadInMB: 1,
        TransformInput: { ContentType: 'application/jsonlines' },
      },
    });
    await fetch(`${slowTail.url}/debug/requests`, { method: 'DELETE' });
    const run = await fx.run(job, { model: slowTail, modelPid: false });
    expect(run.code, run.stderr).toBe(0);
    // Recorded as answered: b's answers before a's last one mean b was sent while a's was held.
    const objectOf = (r: { headers: Record<string, unknown> }) =>
      decodeURI(String(r.headers['x-batch-transform-object'])).split('/').pop();
    const order = (await recordedRequests(slowTail)).filter((r) => r.url === '/invocations').map(objectOf);
    expect(order.filter((o) => o === 'a.jsonl').length).toBeGreaterThan(1);
    expect(order.filter((o) => o === 'b.jsonl').length).toBeGreaterThan(1);
    expect(order.indexOf('b.jsonl')).toBeLessThan(order.lastIndexOf('a.jsonl'));
    expect((await fx.output(job, 'a.jsonl'))?.toString()).toBe(a);
    expect((await fx.output(job, 'b.jsonl'))?.toString()).toBe(b);
  });

  it('outputs are byte-identical to one-at-a-time processing, whatever order the answers come in', async ({
    expect,
  }) => {
    // Objects of one to many mini-batches, with a model that answers in random order.
    const objects: Record<string, string> = {};
    for (let i = 0; i < 12; i++)
      objects[`part-${i}.jsonl`] = jsonLines(`p${i}`, 1 + ((i * 977) % 9000), i % 3);
    const runWith = async (mct: number) => {
      const job = await fx.prepare(`identical-${mct}`, {
        objects,
        request: {
          MaxConcurrentTransforms: mct,
          BatchStrategy: 'MultiRecord',
          MaxPayloadInMB: 1,
          TransformInput: { ContentType: 'application/jsonlines' },
        },
      });
      const run = await fx.run(job, { model: jittery, modelPid: false });
      expect(run.code, run.stderr).toBe(0);
      return fx.outputs(job);
    };
    const [sequential, concurrent] = await Promise.all([runWith(1), runWith(4)]);
    expect([...concurrent.keys()].sort()).toEqual([...sequential.keys()].sort());
    for (const [key, body] of sequential) {
      expect(body.equals(upper(objects[key.replace(/\.out$/, '')]!))).toBe(true);
      expect(concurrent.get(key)!.equals(body)).toBe(true);
    }
  });
});

describe('file:// input read into reused buffers', () => {
  let tmp: TempDir;
  beforeAll(async () => {
    tmp = await makeTempDir('flow-control-');
  });
  afterAll(() => tmp?.remove());

  it('many objects at once through the pooled reader: every output byte-identical to its input transformed', async ({
    expect,
  }) => {
    const input = join(tmp.path, 'in');
    await mkdir(input, { recursive: true });
    const objects: Record<string, string> = {};
    for (let i = 0; i < 10; i++) {
      // Lines cut across the reader's 256 KiB buffers and the 1 MiB mini-batches.
      objects[`f${i}.csv`] = Array.from(
        { length: 2000 + i * 1500 },
        (_, r) => `${i},${r},${'y'.repeat((r * 13) % 700)}\n`,
      ).join('');
      await writeFile(join(input, `f${i}.csv`), objects[`f${i}.csv`]!);
    }
    const output = join(tmp.path, 'out');
    const { description } = await runLocalJob({
      request: {
        TransformJobName: 'flow-control-file',
        ModelName: 'test-model',
        BatchStrategy: 'MultiRecord',
        MaxPayloadInMB: 1,
        MaxConcurrentTransforms: 4,
        TransformInput: {
          DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `file://${input}/` } },
          ContentType: 'text/csv',
          SplitType: 'Line',
        },
        TransformOutput: { S3OutputPath: `file://${output}/`, AssembleWith: 'Line' },
        TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
      },
      storage: new FileStorage(),
      model: { kind: 'url', url: jittery.url },
      workRoot: `file://${join(tmp.path, 'work')}/`,
    });
    expect(description.TransformJobStatus, description.FailureReason).toBe('Completed');
    expect((await readdir(output)).sort()).toEqual(
      Object.keys(objects)
        .map((k) => `${k}.out`)
        .sort(),
    );
    for (const [key, body] of Object.entries(objects)) {
      expect((await readFile(join(output, `${key}.out`))).equals(upper(body))).toBe(true);
    }
  });
});
