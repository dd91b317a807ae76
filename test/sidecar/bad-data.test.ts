import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, type ExpectStatic, it } from 'vitest';
import { encodeRecordIO, encodeTFRecord } from '../../src/dataplane';
import type { StartedModel } from '../fixtures/models/start';
import { BUCKET, model, type PreparedJob, type SidecarRun, SidecarFixture, upper } from './harness';

// The bad-input corpus, through the sidecar process: every broken object fails on its own with an
// error that says what is wrong and where (the record's byte offset where there is one), gets no
// `.out` and leaves no upload behind, while the good objects beside it in the same partition
// complete. The sidecar itself ends normally (exit 0): bad data is the object's failure, not the
// worker's.
//
// Empty objects (0 bytes) are not bad data: an empty object holds no records, whatever its split
// type or compression (a 0-byte `.gz` included), so it completes with an empty `.out` and the model
// is not called. SageMaker documents nothing for this case; "an object gets its `.out` if all of it
// succeeded" holds trivially, and every input keeps its output for tools that pair them.

let fx: SidecarFixture;
let echo: StartedModel;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  [fx, echo] = await Promise.all([
    SidecarFixture.start(),
    model({ TEST_MODEL_UPPERCASE: '1', TEST_MODEL_RECORD_LIMIT: '0' }, cleanups),
  ]);
});
afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
  await fx?.stop();
});

const MiB = 1024 * 1024;
const rows = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => `${tag}-${i},value ${i}\n`).join('');
const linePerRecord = (payloads: readonly Buffer[]) =>
  Buffer.concat(payloads.flatMap((p) => [upper(p), Buffer.from('\n')]));
const payloads = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) => Buffer.from(`${tag} payload ${i} `.repeat(3)));
/** Byte offset of record `i` in an object of `encode`d records. */
const offsetOf = (records: readonly Buffer[], encode: (b: Buffer) => Buffer, i: number) =>
  records.slice(0, i).reduce((sum, r) => sum + encode(r).length, 0);

interface Expected {
  /** Objects that must complete, with their exact output. */
  readonly good: Readonly<Record<string, Buffer | string>>;
  /** Objects that must fail: the whole error message, and the record offset when there is one. */
  readonly bad: Readonly<Record<string, { readonly message: RegExp | string; readonly offset?: number }>>;
}

/** Everything the corpus promises about one partition's run. */
async function expectOutcome(expect: ExpectStatic, job: PreparedJob, run: SidecarRun, e: Expected) {
  expect(run.code, run.stderr).toBe(0);
  const outputs = await fx.outputs(job);
  expect([...outputs.keys()].sort()).toEqual(
    Object.keys(e.good)
      .map((k) => `${k}.out`)
      .sort(),
  );
  for (const [key, body] of Object.entries(e.good)) {
    expect(outputs.get(`${key}.out`)?.toString('latin1'), key).toBe(Buffer.from(body).toString('latin1'));
  }
  const items = await fx.itemsByKey(job);
  for (const [key, { message, offset }] of Object.entries(e.bad)) {
    const item = items.get(key);
    expect(item?.status, key).toBe('Failed');
    if (typeof message === 'string') expect(item!.error!.message, key).toBe(message);
    else expect(item!.error!.message, key).toMatch(message);
    expect(item!.error!.offset, key).toBe(offset);
    // The log names the object's full location, for per-job log streams read on their own.
    const uri = job.plan.objects[item!.object]!.uri;
    const logged = run.logs.find((l) => l.level === 'error' && l.object === uri);
    expect(logged?.msg, key).toBe(`object failed: ${uri}: ${item!.error!.message}`);
  }
  for (const key of Object.keys(e.good)) expect(items.get(key)?.status, key).toBe('Completed');
  expect(await fx.incompleteUploads(job)).toEqual([]);
  // Nothing was written outside the output location: every `.out` in the job's folder is under it.
  const everything = await fx.objectsUnder(`s3://${BUCKET}/${job.name}/`);
  const outs = [...everything.keys()].filter((k) => k.endsWith('.out'));
  expect(
    outs.every((k) => k.startsWith('out/')),
    outs.join(', '),
  ).toBe(true);
}

describe.concurrent('bad input, one broken object at a time', () => {
  it('gzip: corrupt, truncated and damaged streams fail their object; an empty object gets an empty .out', async ({
    expect,
  }) => {
    const text = rows(2000, 'gz');
    const gz = gzipSync(text);
    const damaged = Buffer.from(gz);
    for (let i = 200; i < 260; i++) damaged[i]! ^= 0x5a;
    const job = await fx.prepare('bad-gzip', {
      objects: {
        'good.csv.gz': gz,
        'corrupt.csv.gz': 'this is plain text, not gzip\n',
        'truncated.csv.gz': gz.subarray(0, gz.length - 40),
        'damaged.csv.gz': damaged,
        'empty.csv.gz': '',
      },
      request: { MaxPayloadInMB: 1, TransformInput: { CompressionType: 'Gzip' } },
    });
    const run = await fx.run(job, { model: echo });
    await expectOutcome(expect, job, run, {
      good: { 'good.csv.gz': upper(text), 'empty.csv.gz': '' },
      bad: {
        'corrupt.csv.gz': {
          message: 'the object is not valid gzip (incorrect header check) after 0 decompressed bytes',
        },
        'truncated.csv.gz': {
          message: /^the object is not valid gzip \(unexpected end of file\) after \d+ decompressed bytes$/,
        },
        'damaged.csv.gz': { message: /^the object is not valid gzip \(.+\) after \d+ decompressed bytes$/ },
      },
    });
  });

  it('RecordIO: a truncated object, a bad magic and a record over MaxPayloadInMB fail with their offsets', async ({
    expect,
  }) => {
    const good = payloads(5, 'rec');
    const three = payloads(3, 'x');
    const truncated = Buffer.concat(three.map(encodeRecordIO));
    const badMagic = Buffer.from(truncated);
    badMagic.fill(0, offsetOf(three, encodeRecordIO, 1), offsetOf(three, encodeRecordIO, 1) + 4);
    const oversize = [Buffer.from('small'), Buffer.alloc(MiB + 10, 0x62), Buffer.from('after')];
    const job = await fx.prepare('bad-recordio', {
      objects: {
        'good.rec': Buffer.concat(good.map(encodeRecordIO)),
        'truncated.rec': truncated.subarray(0, truncated.length - 6),
        'bad-magic.rec': badMagic,
        'oversize.rec': Buffer.concat(oversize.map(encodeRecordIO)),
        'empty.rec': '',
      },
      request: {
        BatchStrategy: 'SingleRecord',
        MaxPayloadInMB: 1,
        TransformInput: { SplitType: 'RecordIO', ContentType: 'application/x-recordio' },
      },
    });
    const run = await fx.run(job, { model: echo });
    const at = (records: Buffer[], i: number) => offsetOf(records, encodeRecordIO, i);
    await expectOutcome(expect, job, run, {
      good: { 'good.rec': linePerRecord(good), 'empty.rec': '' },
      bad: {
        'truncated.rec': {
          message: `RecordIO data ends inside the record at byte offset ${at(three, 2)} (truncated object)`,
          offset: at(three, 2),
        },
        'bad-magic.rec': {
          message: `not a RecordIO header (bad magic) at byte offset ${at(three, 1)}`,
          offset: at(three, 1),
        },
        'oversize.rec': {
          message: `record at byte offset ${at(oversize, 1)} is ${MiB + 10} bytes, more than MaxPayloadInMB allows (${MiB} bytes)`,
          offset: at(oversize, 1),
        },
      },
    });
  });

  it('TFRecord: truncation, a data CRC mismatch, a length CRC mismatch and an oversize record fail with their offsets', async ({
    expect,
  }) => {
    const good = payloads(5, 'tf');
    const three = payloads(3, 'y');
    const object = Buffer.concat(three.map(encodeTFRecord));
    const second = offsetOf(three, encodeTFRecord, 1);
    const dataCrc = Buffer.from(object);
    dataCrc[second + 12 + 2]! ^= 0x01; // one bit of the second record's payload
    const lengthCrc = Buffer.from(object);
    lengthCrc[second + 9]! ^= 0x01; // one bit of the second record's length checksum
    const oversize = [Buffer.from('small'), Buffer.alloc(MiB + 10, 0x63)];
    const job = await fx.prepare('bad-tfrecord', {
      objects: {
        'good.tfrecord': Buffer.concat(good.map(encodeTFRecord)),
        'truncated.tfrecord': object.subarray(0, second + 20),
        'data-crc.tfrecord': dataCrc,
        'length-crc.tfrecord': lengthCrc,
        'oversize.tfrecord': Buffer.concat(oversize.map(encodeTFRecord)),
        'empty.tfrecord': '',
      },
      request: {
        BatchStrategy: 'SingleRecord',
        MaxPayloadInMB: 1,
        TransformInput: { SplitType: 'TFRecord', ContentType: 'application/x-tfrecord' },
      },
    });
    const run = await fx.run(job, { model: echo });
    const big = offsetOf(oversize, encodeTFRecord, 1);
    await expectOutcome(expect, job, run, {
      good: { 'good.tfrecord': linePerRecord(good), 'empty.tfrecord': '' },
      bad: {
        'truncated.tfrecord': {
          message: `TFRecord data ends inside the record at byte offset ${second} (truncated object)`,
          offset: second,
        },
        'data-crc.tfrecord': {
          message: `TFRecord data checksum mismatch in the record at byte offset ${second}`,
          offset: second,
        },
        'length-crc.tfrecord': {
          message: `TFRecord length checksum mismatch in the record at byte offset ${second}`,
          offset: second,
        },
        'oversize.tfrecord': {
          message: `record at byte offset ${big} is ${MiB + 10} bytes, more than MaxPayloadInMB allows (${MiB} bytes)`,
          offset: big,
        },
      },
    });
  });

  it('JoinSource Input: invalid JSON and non-UTF-8 bytes fail their object at the record', async ({
    expect,
  }) => {
    const lines = ['{"id":1,"t":"a"}', '{"id":2,"t":"b"}', '"bare"'];
    const latin1 = Buffer.concat([
      Buffer.from('{"id":1}\n{"t":"caf'),
      Buffer.from([0xe9]),
      Buffer.from('"}\n'),
    ]);
    const job = await fx.prepare('bad-json', {
      objects: {
        'good.jsonl': `${lines.join('\n')}\n`,
        'invalid.jsonl': '{"id":1}\n{"id":2,\n{"id":3}\n',
        'not-utf8.jsonl': latin1,
        'empty.jsonl': '',
      },
      request: {
        BatchStrategy: 'MultiRecord',
        TransformInput: { ContentType: 'application/jsonlines' },
        DataProcessing: { JoinSource: 'Input' },
      },
    });
    const run = await fx.run(job, { model: echo });
    const joined = lines.map((l) => {
      const input = JSON.parse(l) as unknown;
      const output = JSON.parse(upper(l).toString()) as unknown;
      return `${JSON.stringify(typeof input === 'object' ? { ...(input as object), SageMakerOutput: output } : { SageMakerInput: input, SageMakerOutput: output })}\n`;
    });
    await expectOutcome(expect, job, run, {
      good: { 'good.jsonl': joined.join(''), 'empty.jsonl': '' },
      bad: {
        'invalid.jsonl': {
          message:
            /^JoinSource Input: the input record is not valid JSON \(.+\) \(record at byte offset 9\)$/,
          offset: 9,
        },
        'not-utf8.jsonl': {
          message:
            'JoinSource Input: the input record is not valid UTF-8 (the first bad byte is byte 9 of the record) (record at byte offset 9)',
          offset: 9,
        },
      },
    });
  });

  it('Line: a record over MaxPayloadInMB fails its object; keys with spaces, unicode and symbols keep their names', async ({
    expect,
  }) => {
    const small = rows(20, 'k');
    const job = await fx.prepare('bad-line', {
      objects: {
        'with space/a b.csv': small,
        'ünïcödé/naïve ✓.csv': small,
        'p+q=r&s;t%20u.csv': small,
        'oversize.csv': `${small}${'z'.repeat(MiB + 10)}\nafter,1\n`,
        'empty.csv': '',
      },
      request: { BatchStrategy: 'MultiRecord', MaxPayloadInMB: 1 },
    });
    const run = await fx.run(job, { model: echo });
    await expectOutcome(expect, job, run, {
      good: {
        'with space/a b.csv': upper(small),
        'ünïcödé/naïve ✓.csv': upper(small),
        'p+q=r&s;t%20u.csv': upper(small),
        'empty.csv': '',
      },
      bad: {
        'oversize.csv': {
          message: new RegExp(
            `^record at byte offset ${small.length} is (at least )?\\d+ bytes, more than MaxPayloadInMB allows \\(${MiB} bytes\\)$`,
          ),
          offset: small.length,
        },
      },
    });
  });

  it('a manifest key with ".." segments fails its object rather than write outside the output location', async ({
    expect,
  }) => {
    const job = await fx.prepare('bad-key', {
      objects: { 'ok.csv': 'fine,1\n' },
      outside: { 'escape.csv': 'escaped,1\n' },
      manifest: ['ok.csv', 'sub/../../escape.csv'],
    });
    const run = await fx.run(job, { model: echo });
    await expectOutcome(expect, job, run, {
      good: { 'ok.csv': 'FINE,1\n' },
      bad: {
        'sub/../../escape.csv': {
          message: `its name relative to the input prefix, "sub/../../escape.csv", has a ".." segment, so its output ${job.outputUri}sub/../../escape.csv.out would resolve outside the output location ${job.outputUri}; rename the object`,
        },
      },
    });
  });
});
