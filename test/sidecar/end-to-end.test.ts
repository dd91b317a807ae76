import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { encodeRecordIO, encodeTFRecord, RECORDIO_MAGIC } from '../../src/dataplane';
import { assembleStage } from '../../src/lifecycle/assemble';
import { progressUri } from '../../src/contract/layout';
import type { StartedModel } from '../fixtures/models/start';
import { BUCKET, model, recordedRequests, SidecarFixture, upper } from './harness';

// The sidecar as a process, end to end: job.json and plan.json written by the lifecycle stages into
// the s3rver harness, the test model as a real HTTP server, outputs read back through the S3 API.
// The test model's UPPERCASE mode makes the transform visible: every output must be exactly what
// that transform of the right request bodies, in input order, gives.

let fx: SidecarFixture;
let echo: StartedModel;
/** A model whose GET /execution-parameters asks for 3 / SINGLE_RECORD / 2 (started on first use). */
let paramsModel: Promise<StartedModel>;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  [fx, echo] = await Promise.all([
    SidecarFixture.start(),
    model({ TEST_MODEL_UPPERCASE: '1', TEST_MODEL_RECORD_LIMIT: '100000' }, cleanups),
  ]);
});
beforeAll(() => {
  paramsModel = model(
    {
      TEST_MODEL_EXECUTION_PARAMETERS: JSON.stringify({
        MaxConcurrentTransforms: 3,
        BatchStrategy: 'SINGLE_RECORD',
        MaxPayloadInMB: 2,
      }),
    },
    cleanups,
  );
  paramsModel.catch(() => {});
});
afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
  await fx?.stop();
});

/** CSV lines `tag-000001,abc…`; with `vary`, line lengths differ so byte cuts fall inside lines. */
const csvRows = (n: number, tag: string, width = 40, vary = 0) =>
  Array.from(
    { length: n },
    (_, i) =>
      `${tag}-${String(i).padStart(6, '0')},${'abcdefghij'.repeat(width / 10)}${'x'.repeat(vary ? i % vary : 0)}\n`,
  ).join('');

/** What AssembleWith Line gives for SingleRecord: each record's output on its own line. */
const linePerRecord = (payloads: readonly Buffer[]) =>
  Buffer.concat(payloads.flatMap((p) => [upper(p), Buffer.from(p.at(-1) === 10 ? '' : '\n')]));

const MAGIC = Buffer.alloc(4);
MAGIC.writeUInt32LE(RECORDIO_MAGIC);

describe.concurrent('every split type, end to end through the sidecar process', () => {
  it('Line, MultiRecord: two objects (one nested) become their transforms, batch after batch in order', async ({
    expect,
  }) => {
    // 1.6 MB with MaxPayloadInMB 1: the first object needs two mini-batches.
    const a = csvRows(20_000, 'a', 70);
    const b = csvRows(50, 'b');
    const job = await fx.prepare('line-multi', {
      objects: { 'a.csv': a, 'nested/dir/b.csv': b },
      request: { BatchStrategy: 'MultiRecord', MaxPayloadInMB: 1 },
    });
    const run = await fx.run(job, { model: echo });
    expect(run.code, run.stderr).toBe(0);
    const out = await fx.outputs(job);
    expect([...out.keys()].sort()).toEqual(['a.csv.out', 'nested/dir/b.csv.out']);
    expect(out.get('a.csv.out')!.equals(upper(a))).toBe(true);
    expect(out.get('nested/dir/b.csv.out')!.equals(upper(b))).toBe(true);
    const result = await fx.result(job);
    expect(result.counters).toMatchObject({ objectsCompleted: 2, objectsFailed: 0, records: 20_050 });
    expect(result.counters.invocations).toBeGreaterThanOrEqual(3);
    // The last progress report agrees with the result.
    const progress = JSON.parse((await fx.s3.storage.readAll(progressUri(job.ref.workUri, 0))).toString());
    expect(progress).toMatchObject({ partition: 0, counters: result.counters });
  });

  it('RecordIO, SingleRecord: the model gets bare payloads, a record split around the magic re-joined', async ({
    expect,
  }) => {
    const payloads = [
      Buffer.from('alpha'),
      Buffer.concat([Buffer.from('abcd'), MAGIC, Buffer.from('efgh'), MAGIC, Buffer.from('ij')]),
      Buffer.from('gamma-with-more-text'),
    ];
    const job = await fx.prepare('recordio-single', {
      objects: { 'r.rec': Buffer.concat(payloads.map(encodeRecordIO)) },
      request: {
        BatchStrategy: 'SingleRecord',
        TransformInput: { SplitType: 'RecordIO', ContentType: 'application/x-recordio' },
      },
    });
    const run = await fx.run(job, { model: echo });
    expect(run.code, run.stderr).toBe(0);
    expect((await fx.output(job, 'r.rec'))!.equals(linePerRecord(payloads))).toBe(true);
  });

  it('TFRecord, MultiRecord: records keep their framing, batches are consecutive, checksums pass', async ({
    expect,
  }) => {
    const object = Buffer.concat(
      Array.from({ length: 2500 }, (_, i) => encodeTFRecord(Buffer.from(`example ${i} `.repeat(40)))),
    );
    const job = await fx.prepare('tfrecord-multi', {
      objects: { 't.tfrecord': object },
      request: {
        BatchStrategy: 'MultiRecord',
        MaxPayloadInMB: 1,
        TransformInput: { SplitType: 'TFRecord', ContentType: 'application/x-tfrecord' },
        TransformOutput: { AssembleWith: 'None' },
      },
    });
    const run = await fx.run(job, { model: echo });
    expect(run.code, run.stderr).toBe(0);
    expect(object.length).toBeGreaterThan(1024 * 1024);
    expect((await fx.output(job, 't.tfrecord'))!.equals(upper(object))).toBe(true);
    expect((await fx.result(job)).counters).toMatchObject({ records: 2500, invocations: 2 });
  });

  it('None: each object is one request; with MaxPayloadInMB 0 a 2 MB object is streamed whole', async ({
    expect,
  }) => {
    const big = Buffer.from('streamed body text; '.repeat(100_000));
    const [whole, streamed] = await Promise.all([
      fx.prepare('none-whole', {
        objects: { 'doc1.txt': 'a whole document\nwith two lines', 'doc2.txt': 'second' },
        request: { TransformInput: { SplitType: 'None', ContentType: 'text/plain' } },
      }),
      fx.prepare('none-streamed', {
        objects: { 'big.txt': big },
        request: {
          MaxPayloadInMB: 0,
          TransformInput: { SplitType: 'None', ContentType: 'text/plain' },
          TransformOutput: { AssembleWith: 'None' },
        },
      }),
    ]);
    const runs = await Promise.all([fx.run(whole, { model: echo }), fx.run(streamed, { model: echo })]);
    for (const run of runs) expect(run.code, run.stderr).toBe(0);
    expect((await fx.output(whole, 'doc1.txt'))!.toString()).toBe('A WHOLE DOCUMENT\nWITH TWO LINES\n');
    expect((await fx.output(whole, 'doc2.txt'))!.toString()).toBe('SECOND\n');
    expect((await fx.result(whole)).counters).toMatchObject({ invocations: 2, records: 2 });
    expect((await fx.output(streamed, 'big.txt'))!.equals(upper(big))).toBe(true);
    // Streamed: one chunked request of the whole object, never buffered into a Content-Length body.
    const [sent] = (await recordedRequests(echo)).filter(
      (r) => decodeURI(String(r.headers['x-batch-transform-object'])) === `${streamed.inputUri}big.txt`,
    );
    expect(sent).toMatchObject({ bodyBytes: big.length, headers: { 'transfer-encoding': 'chunked' } });
    expect(sent!.headers).not.toHaveProperty('content-length');
  });

  it('Gzip: objects are decompressed before splitting, concatenated gzip members included', async ({
    expect,
  }) => {
    const text = csvRows(3000, 'gz');
    const cut = text.indexOf('\n', 1000) + 1;
    const members = Buffer.concat([gzipSync(text.slice(0, cut)), gzipSync(text.slice(cut))]);
    const job = await fx.prepare('gzip', {
      objects: { 'one.csv.gz': gzipSync(text), 'two-members.csv.gz': members },
      request: { TransformInput: { CompressionType: 'Gzip' }, MaxPayloadInMB: 1 },
    });
    const run = await fx.run(job, { model: echo });
    expect(run.code, run.stderr).toBe(0);
    expect((await fx.output(job, 'one.csv.gz'))!.equals(upper(text))).toBe(true);
    expect((await fx.output(job, 'two-members.csv.gz'))!.equals(upper(text))).toBe(true);
  });
});

describe.concurrent('filters and joins, end to end', () => {
  it('JSON Lines: InputFilter → model → JoinSource Input → OutputFilter', async ({ expect }) => {
    const rows = Array.from({ length: 30 }, (_, i) => ({ id: i, note: `n${i}`, features: [i, i + 0.5] }));
    const job = await fx.prepare('join-json', {
      objects: { 'rows.jsonl': rows.map((r) => JSON.stringify(r)).join('\n') + '\n' },
      request: {
        BatchStrategy: 'MultiRecord',
        TransformInput: { ContentType: 'application/jsonlines' },
        DataProcessing: {
          InputFilter: '$.features',
          JoinSource: 'Input',
          OutputFilter: "$['id','SageMakerOutput']",
        },
      },
    });
    const run = await fx.run(job, { model: echo });
    expect(run.code, run.stderr).toBe(0);
    // The model (which upper-cases, leaving digits alone) saw only the features.
    const expected =
      rows.map((r) => JSON.stringify({ id: r.id, SageMakerOutput: r.features })).join('\n') + '\n';
    expect((await fx.output(job, 'rows.jsonl'))!.toString()).toBe(expected);
  });

  it('CSV: the output is appended to the input row and the OutputFilter picks columns of both', async ({
    expect,
  }) => {
    const job = await fx.prepare('join-csv', {
      objects: { 'rows.csv': 'id1,a,b\nid2,c,d\n' },
      request: {
        BatchStrategy: 'SingleRecord',
        DataProcessing: { InputFilter: '$[1:]', JoinSource: 'Input', OutputFilter: '$[0,-2,-1]' },
      },
    });
    const run = await fx.run(job, { model: echo });
    expect(run.code, run.stderr).toBe(0);
    expect((await fx.output(job, 'rows.csv'))!.toString()).toBe('id1,A,B\nid2,C,D\n');
  });
});

describe.concurrent('shards of one object', () => {
  // The unsharded output of these objects is the test model's transform of the whole object (the
  // split-type tests above prove that for Line and MultiRecord framed records); the sharded run must
  // give exactly those bytes once assembled.
  it.for([
    ['Line', 'text/csv', 'Line', () => Buffer.from(csvRows(30_000, 'shard', 60, 7))],
    [
      'RecordIO',
      'application/x-recordio',
      'None',
      () =>
        Buffer.concat(
          Array.from({ length: 6000 }, (_, i) =>
            encodeRecordIO(
              // Every 7th record holds the magic, aligned: dmlc splits it into parts a shard must not enter.
              i % 7 === 0
                ? Buffer.concat([
                    Buffer.from(`rec${String(i).padStart(5, '0')}`),
                    MAGIC,
                    Buffer.alloc(360, 0x61),
                  ])
                : Buffer.from(`record ${i} `.repeat(30 + (i % 5))),
            ),
          ),
        ),
    ],
  ] as const)(
    '%s: byte-range shards on several workers, once assembled, equal the unsharded output',
    async ([split, contentType, assembleWith, data], { expect }) => {
      const object = data();
      const job = await fx.prepare(`shards-${split}`, {
        objects: { 'big.dat': object },
        request: {
          BatchStrategy: 'MultiRecord',
          MaxPayloadInMB: 1,
          TransformInput: { SplitType: split, ContentType: contentType },
          TransformOutput: { AssembleWith: assembleWith },
          TransformResources: { InstanceCount: 3 },
          Extensions: { ShardMinSizeInMB: 1 },
        },
      });
      const { partitions, objects } = job.plan;
      // One shard per worker when the object's size divides evenly; the planner's rounding may leave
      // one worker out otherwise. Either way the object is cut, and each partition holds one shard.
      const shards = objects[0]!.shardCount;
      expect(shards).toBeGreaterThanOrEqual(2);
      // Cuts on the ShardMinSizeInMB grid make shards a little uneven, so the largest goes first.
      expect(partitions.map((p) => p.items.length)).toEqual(Array.from({ length: shards }, () => 1));
      expect(partitions.map((p) => p.items[0]!.shard).sort()).toEqual(
        Array.from({ length: shards }, (_, i) => i),
      );

      const runs = await Promise.all(partitions.map((p) => fx.run(job, { model: echo, partition: p.index })));
      for (const run of runs) expect(run.code, run.stderr).toBe(0);
      // Nothing final before assembly: shard outputs wait in the work location.
      expect(await fx.output(job, 'big.dat')).toBeUndefined();
      await assembleStage(job.ref, job.planRef, fx.s3.storage);
      expect((await fx.output(job, 'big.dat'))!.equals(upper(object))).toBe(true);
      // Each worker did part of the object, and no record was done twice.
      const records = await Promise.all(
        partitions.map(async (p) => (await fx.result(job, p.index)).counters.records),
      );
      expect(records.every((n) => n > 0)).toBe(true);
      expect(records.reduce((x, y) => x + y)).toBe(split === 'Line' ? 30_000 : 6000);
    },
  );
});

describe('TransformOutput.KmsKeyId', () => {
  it("asks S3 for SSE-KMS with the key on every output write: the workers' shard outputs and Assemble's .out", async ({
    expect,
  }) => {
    const object = Buffer.from(csvRows(30_000, 'kms', 60, 7));
    const job = await fx.prepare('kms-shards', {
      objects: { 'big.dat': object },
      request: {
        BatchStrategy: 'MultiRecord',
        MaxPayloadInMB: 1,
        TransformOutput: { KmsKeyId: 'alias/job-output' },
        TransformResources: { InstanceCount: 2 },
        Extensions: { ShardMinSizeInMB: 1 },
      },
    });
    expect(job.plan.objects[0]!.shardCount).toBe(2);
    const key = (uri: string) => uri.slice(`s3://${BUCKET}/`.length);
    const outputs = [key(job.outputUri), key(`${job.ref.workUri}shards/`)];
    // Every request that starts an object (a PUT, or a multipart upload) under the outputs or shards.
    const stop = fx.record(
      (r) =>
        (r.operation === 'PutObject' || r.operation === 'CreateMultipartUpload') &&
        outputs.some((prefix) => r.key.startsWith(prefix)),
    );
    const runs = await Promise.all(
      job.plan.partitions.map((p) => fx.run(job, { model: echo, partition: p.index })),
    );
    for (const run of runs) expect(run.code, run.stderr).toBe(0);
    await assembleStage(job.ref, job.planRef, fx.s3.storage);
    const writes = stop();

    expect((await fx.output(job, 'big.dat'))!.equals(upper(object))).toBe(true);
    expect(writes.filter((w) => w.key.startsWith(outputs[1]!)).length).toBeGreaterThanOrEqual(2);
    expect(writes.filter((w) => w.key === `${outputs[0]}big.dat.out`).length).toBeGreaterThanOrEqual(1);
    for (const w of writes) {
      expect(w.headers['x-amz-server-side-encryption'], `${w.operation} ${w.key}`).toBe('aws:kms');
      expect(w.headers['x-amz-server-side-encryption-aws-kms-key-id'], w.key).toBe('alias/job-output');
    }
  });
});

describe.concurrent('what reaches the model', () => {
  it('Line, SingleRecord: one request per line with Content-Type always, Accept only when set, and the object key and record offset headers', async ({
    expect,
  }) => {
    // CRLF, an empty line and a last line without its newline: each is one record, one output line.
    const text = 'r0,a\r\nrow1,b\n\nr3,c';
    const [a, b] = await Promise.all([
      fx.prepare('headers-accept', {
        objects: { 'dir/my data ü.csv': text },
        request: { BatchStrategy: 'SingleRecord', TransformOutput: { Accept: 'text/csv' } },
      }),
      fx.prepare('headers-no-accept', {
        objects: { 'plain.bin': text },
        request: { BatchStrategy: 'SingleRecord', TransformInput: { ContentType: undefined } },
      }),
    ]);
    const runs = await Promise.all([fx.run(a, { model: echo }), fx.run(b, { model: echo })]);
    for (const run of runs) expect(run.code, run.stderr).toBe(0);
    expect((await fx.output(a, 'dir/my data ü.csv'))!.toString()).toBe('R0,A\r\nROW1,B\n\nR3,C\n');
    expect((await fx.output(b, 'plain.bin'))!.toString()).toBe('R0,A\r\nROW1,B\n\nR3,C\n');

    const seen = await recordedRequests(echo);
    const of = (uri: string) =>
      seen.filter((r) => decodeURI(String(r.headers['x-batch-transform-object'])) === uri);
    const seenA = of(`${a.inputUri}dir/my data ü.csv`);
    expect(seenA.map((r) => r.headers['x-batch-transform-record-offset'])).toEqual(['0', '6', '13', '14']);
    for (const r of seenA) {
      expect(r.headers['content-type']).toBe('text/csv');
      expect(r.headers.accept).toBe('text/csv');
      expect(r.headers['x-batch-transform-record-count']).toBe('1');
    }
    const seenB = of(`${b.inputUri}plain.bin`);
    expect(seenB).toHaveLength(4);
    for (const r of seenB) {
      // No ContentType in the request: the body still goes out typed, as bytes.
      expect(r.headers['content-type']).toBe('application/octet-stream');
      expect(r.headers).not.toHaveProperty('accept');
    }
  });

  it.for([
    [
      'the model’s /execution-parameters over the defaults',
      true,
      {},
      { MaxConcurrentTransforms: 3, BatchStrategy: 'SingleRecord', MaxPayloadInMB: 2 },
    ],
    [
      'the request over /execution-parameters, field by field',
      true,
      { MaxConcurrentTransforms: 2, BatchStrategy: 'MultiRecord' },
      { MaxConcurrentTransforms: 2, BatchStrategy: 'MultiRecord', MaxPayloadInMB: 2 },
    ],
    [
      'SageMaker’s defaults when neither the request nor the model says',
      false,
      {},
      { MaxConcurrentTransforms: 1, BatchStrategy: 'MultiRecord', MaxPayloadInMB: 6 },
    ],
  ] as const)(
    'effective parameters: %s, logged in one line',
    async ([, offers, request, effective], { expect }) => {
      const job = await fx.prepare('params', { objects: { 'p.csv': 'a\nb\nc\nd\n' }, request });
      const run = await fx.run(job, { model: offers ? await paramsModel : echo });
      expect(run.code, run.stderr).toBe(0);
      const lines = run.logs.filter((l) => l.msg.startsWith('effective parameters:'));
      expect(lines.map((l) => l.msg)).toEqual([
        `effective parameters: MaxConcurrentTransforms=${effective.MaxConcurrentTransforms} BatchStrategy=${effective.BatchStrategy} MaxPayloadInMB=${effective.MaxPayloadInMB} InvocationsTimeoutInSeconds=600 InvocationsMaxRetries=3`,
      ]);
      const result = await fx.result(job);
      expect(result.effective).toEqual(effective);
      // …and they are what the sidecar then does: one request per record, or all four in one.
      expect(result.counters.invocations).toBe(effective.BatchStrategy === 'SingleRecord' ? 4 : 1);
    },
  );
});
