/**
 * Property definitions for the data plane, shared by the CI-sized suite (fuzz.test.ts) and the long
 * run (`npm run fuzz`, run.ts). Each property builds random records, writes them the way a producer
 * would (Line, CSV with quoted newlines, RecordIO with the magic inside payloads, TFRecord, gzip),
 * cuts the bytes into random chunks (empty ones included, as a network stream can deliver them) and
 * checks that what the data plane reads back is exactly what was written: same records, same byte
 * offsets, nothing lost, nothing duplicated, whatever the chunking, batching, bisection or sharding.
 *
 * The expectations come from the generators (the records that were written) or from small reference
 * implementations written here, never from the code under test. Predicates throw (node:assert), so
 * they run the same under vitest and under plain node.
 *
 * test/dataplane/*.test.ts hold the unit-level properties (one splitter at a time); these cover the
 * whole input side as the sidecar drives it (readMiniBatches), bisection, gzip, shards read through
 * the packers, and the planner's windows, with wider generators.
 */
import { deepStrictEqual, ok, strictEqual } from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import type { Invocation, MiniBatch } from '../../src/dataplane/batch';
import { packMiniBatches } from '../../src/dataplane/batch';
import { DataError } from '../../src/dataplane/errors';
import { readMiniBatches } from '../../src/dataplane/input';
import type { DataPlaneOptions } from '../../src/dataplane/options';
import type { DataRecord, ShardWindow } from '../../src/dataplane/record';
import { encodeRecordIO, RECORDIO_MAGIC } from '../../src/dataplane/recordio';
import { shardReadStart } from '../../src/dataplane/shard';
import { splitRecords } from '../../src/dataplane/split';
import { encodeTFRecord } from '../../src/dataplane/tfrecord';
import { validateRequest } from '../../src/job/validate';
import { buildPlan } from '../../src/plan/planner';

export interface FuzzProperty {
  readonly name: string;
  /** What the property says, in one line (printed by the long run). */
  readonly claim: string;
  /** Share of the long run's cases. */
  readonly weight: number;
  readonly property: () => fc.IRawProperty<unknown>;
}

// ---------------------------------------------------------------------------------------------
// Generators

const NL = 0x0a;
const MAGIC = Buffer.alloc(4);
MAGIC.writeUInt32LE(RECORDIO_MAGIC);

/** Bytes without `\n`: mostly the bytes that trip splitters (`\r`, `"`, `,`, UTF-8 lead bytes), some random. */
const lineBytes = fc
  .oneof(
    {
      weight: 3,
      arbitrary: fc.array(fc.constantFrom(0x61, 0x62, 0x2c, 0x22, 0x0d, 0x20, 0xc3, 0xa9), { maxLength: 14 }),
    },
    { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }) },
  )
  .map((a) => Buffer.from(a.map((b) => (b === NL ? 0x0b : b))));

/** A Line object: lines joined by `\n`, with or without a final `\n`. */
const lineFile = fc
  .record({ lines: fc.array(lineBytes, { maxLength: 24 }), trailing: fc.boolean() })
  .map(({ lines, trailing }) => {
    const parts: Buffer[] = [];
    lines.forEach((l, i) => {
      if (i > 0) parts.push(Buffer.of(NL));
      parts.push(l);
    });
    if (trailing && lines.length > 0) parts.push(Buffer.of(NL));
    return Buffer.concat(parts);
  });

/** One well-formed RFC 4180 CSV row: unquoted fields, or quoted fields holding `,`, `\n`, `\r` and `""`. */
const csvRow = fc
  .array(
    fc.oneof(
      fc.string({ unit: fc.constantFrom('a', '1', ' ', '\r', 'é'), maxLength: 5 }),
      fc
        .array(fc.constantFrom('a', ',', '\n', '\r', '""', ' '), { maxLength: 6 })
        .map((units) => `"${units.join('')}"`),
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((fields) => fields.join(','));

const csvFile = fc
  .record({ rows: fc.array(csvRow, { maxLength: 14 }), trailing: fc.boolean() })
  // An empty last row with no final newline is no record (as an empty segment after a final `\n`).
  .map(({ rows, trailing }) => ({
    rows: !trailing && rows.at(-1) === '' ? rows.slice(0, -1) : rows,
    file: Buffer.from(rows.join('\n') + (trailing && rows.length > 0 ? '\n' : ''), 'utf8'),
  }));

/** Binary payloads, some holding the RecordIO magic (aligned or not) so dmlc's escaping is exercised. */
const binaryPayload = fc
  .array(
    fc.oneof(
      { weight: 4, arbitrary: fc.uint8Array({ maxLength: 11 }) },
      { weight: 1, arbitrary: fc.constant(new Uint8Array(MAGIC)) },
    ),
    { maxLength: 5 },
  )
  .map((pieces) => Buffer.concat(pieces));

type Framing = 'RecordIO' | 'TFRecord';
const encode = (framing: Framing, p: Buffer) =>
  framing === 'RecordIO' ? encodeRecordIO(p) : encodeTFRecord(p);

/** Random cut points; repeated points make empty chunks. */
const cutsArb = fc.array(fc.nat(), { maxLength: 14 });

/** The buffer as a stream cut at `cuts` (taken modulo length + 1, sorted, repeats kept as empty chunks). */
async function* chunks(buf: Buffer, cuts: readonly number[]): AsyncGenerator<Buffer> {
  const points = cuts.map((c) => c % (buf.length + 1)).sort((a, b) => a - b);
  let prev = 0;
  for (const p of points) {
    yield buf.subarray(prev, p);
    prev = p;
  }
  yield buf.subarray(prev);
}

/** Consecutive shard windows [0, c1), [c1, c2), … [ck, size) from random cut points. */
function windows(size: number, cuts: readonly number[]): ShardWindow[] {
  const points = [...new Set(cuts.map((c) => c % (size + 1)))]
    .filter((c) => c > 0 && c < size)
    .sort((a, b) => a - b);
  const bounds = [0, ...points, size];
  return bounds.slice(1).map((end, i) => ({ start: bounds[i]!, end }));
}

// ---------------------------------------------------------------------------------------------
// Reference readers (the oracle)

interface Rec {
  readonly offset: number;
  /** Bytes as they sit in the object (framing included; a Line record without its `\n`). */
  readonly framed: Buffer;
  /** The bare record. */
  readonly payload: Buffer;
}

/** Line records: split on `\n`; an empty final segment (after a final `\n`, or an empty object) is none. */
function refLines(file: Buffer): Rec[] {
  const out: Rec[] = [];
  let start = 0;
  for (let i = file.indexOf(NL); i >= 0; i = file.indexOf(NL, i + 1)) {
    const b = file.subarray(start, i);
    out.push({ offset: start, framed: b, payload: b });
    start = i + 1;
  }
  if (start < file.length) {
    const b = file.subarray(start);
    out.push({ offset: start, framed: b, payload: b });
  }
  return out;
}

function framedRecords(framing: Framing, payloads: readonly Buffer[]): { file: Buffer; recs: Rec[] } {
  const recs: Rec[] = [];
  let offset = 0;
  for (const payload of payloads) {
    const framed = encode(framing, payload);
    recs.push({ offset, framed, payload });
    offset += framed.length;
  }
  return { file: Buffer.concat(recs.map((r) => r.framed)), recs };
}

const asTriple = (r: { offset: number; framed: Buffer; payload: Buffer }) => [
  r.offset,
  hex(r.framed),
  hex(r.payload),
];
const hex = (b: Buffer) => b.toString('hex');

async function collectRecords(groups: AsyncIterable<DataRecord[]>): Promise<DataRecord[]> {
  const out: DataRecord[] = [];
  for await (const g of groups) out.push(...g);
  return out;
}

async function collectBatches(batches: AsyncIterable<Invocation>): Promise<MiniBatch[]> {
  const out: MiniBatch[] = [];
  for await (const b of batches) {
    if (b.streamed) throw new Error('expected buffered mini-batches');
    out.push(b);
  }
  return out;
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return e;
  }
}

/** Every record of a batch as [offset, bytes as the body holds them]. */
const batchRecords = (b: MiniBatch) =>
  Array.from({ length: b.count }, (_, i) => [b.recordOffset(i), hex(b.record(i))] as [number, string]);

/**
 * Checks one MultiRecord or SingleRecord batch against the records it should hold: the body is the
 * records joined as SageMaker sends them, within the limit, and halving it down to single records
 * gives the same records with valid bodies at every level (what the sidecar does on 413 or timeout).
 */
function checkBatch(b: MiniBatch, expected: Rec[], o: { single: boolean; sep: boolean; max: number }): void {
  strictEqual(b.count, expected.length);
  const pieces = expected.map((r) => (o.single ? r.payload : r.framed));
  const body = o.sep
    ? Buffer.concat(pieces.flatMap((p, i) => (i ? [Buffer.of(NL), p] : [p])))
    : Buffer.concat(pieces);
  strictEqual(hex(b.body), hex(body));
  strictEqual(b.byteLength, body.length);
  ok(b.byteLength <= o.max, `batch of ${b.byteLength} bytes exceeds the limit ${o.max}`);
  deepStrictEqual(
    batchRecords(b),
    expected.map((r) => [r.offset, hex(o.single ? r.payload : r.framed)]),
  );
  if (b.count > 1) {
    const [left, right] = b.split();
    const mid = Math.ceil(b.count / 2);
    checkBatch(left, expected.slice(0, mid), o);
    checkBatch(right, expected.slice(mid), o);
  }
}

/**
 * Checks a packing: consecutive, every record exactly once, each batch within the limit and greedy
 * (MultiRecord closes a batch only when the next record would not fit).
 */
function checkPacking(
  batches: MiniBatch[],
  recs: Rec[],
  o: { single: boolean; sep: boolean; max: number },
): void {
  let i = 0;
  for (const [k, b] of batches.entries()) {
    const mine = recs.slice(i, i + b.count);
    checkBatch(b, mine, o);
    i += b.count;
    if (!o.single && k < batches.length - 1) {
      const next = recs[i]!;
      ok(
        b.byteLength + (o.sep ? 1 : 0) + next.framed.length > o.max,
        'a batch was closed while the next record fit',
      );
    }
  }
  strictEqual(i, recs.length, 'records lost or duplicated by packing');
}

const LINE_OPTS: DataPlaneOptions = {
  splitType: 'Line',
  compressionType: 'None',
  batchStrategy: 'MultiRecord',
  maxPayloadInMB: 1,
  contentType: 'text/csv',
  joinSource: 'None',
  assembleWith: 'Line',
};

// ---------------------------------------------------------------------------------------------
// Properties

const lineSplit: FuzzProperty = {
  name: 'line-split',
  claim: 'Line: random lines at random chunkings split back to the same records and offsets',
  weight: 10,
  property: () =>
    fc.asyncProperty(lineFile, cutsArb, async (file, cuts) => {
      const got = await collectRecords(splitRecords(chunks(file, cuts), { splitType: 'Line' }));
      deepStrictEqual(got.map(asTriple), refLines(file).map(asTriple));
    }),
};

const csvQuotedSplit: FuzzProperty = {
  name: 'csv-quoted-newlines',
  claim: 'CSV with quoted newlines: random RFC 4180 rows at random chunkings split back to the same rows',
  weight: 10,
  property: () =>
    fc.asyncProperty(csvFile, cutsArb, async ({ rows, file }, cuts) => {
      const got = await collectRecords(
        splitRecords(chunks(file, cuts), { splitType: 'Line', csvQuotedNewlines: true }),
      );
      let offset = 0;
      const expected = rows.map((row) => {
        const b = Buffer.from(row, 'utf8');
        const r = [offset, hex(b), hex(b)];
        offset += b.length + 1;
        return r;
      });
      deepStrictEqual(got.map(asTriple), expected);
    }),
};

const framedSplit = (framing: Framing): FuzzProperty => ({
  name: `${framing.toLowerCase()}-split`,
  claim: `${framing}: random payloads${framing === 'RecordIO' ? ' (the magic inside included)' : ''} at random chunkings read back with the same offsets and framing`,
  weight: 10,
  property: () =>
    fc.asyncProperty(fc.array(binaryPayload, { maxLength: 10 }), cutsArb, async (payloads, cuts) => {
      const { file, recs } = framedRecords(framing, payloads);
      const got = await collectRecords(splitRecords(chunks(file, cuts), { splitType: framing }));
      deepStrictEqual(got.map(asTriple), recs.map(asTriple));
    }),
});

const gzipLines: FuzzProperty = {
  name: 'gzip-line',
  claim: 'Gzip (one or several members) cut anywhere gives the same mini-batches as the plain object',
  weight: 6,
  property: () =>
    fc.asyncProperty(lineFile, fc.nat(), cutsArb, async (file, at, cuts) => {
      const cut = at % (file.length + 1);
      const gz = Buffer.concat([gzipSync(file.subarray(0, cut)), gzipSync(file.subarray(cut))]);
      const opts = { ...LINE_OPTS, maxPayloadInMB: 1 };
      const plain = await collectBatches(readMiniBatches(chunks(file, []), opts));
      const zipped = await collectBatches(
        readMiniBatches(chunks(gz, cuts), { ...opts, compressionType: 'Gzip' }),
      );
      deepStrictEqual(zipped.map(batchRecords), plain.map(batchRecords));
    }),
};

/** Packs random records of any split type through readMiniBatches, as the sidecar reads an object. */
const packing: FuzzProperty = {
  name: 'mini-batches',
  claim:
    'readMiniBatches (Line/RecordIO/TFRecord, Single/MultiRecord, random limits): every record once, in order, bodies within the limit, greedy, bisectable to single records',
  weight: 14,
  property: () =>
    fc.asyncProperty(
      fc.oneof(
        lineFile.map((file) => ({ split: 'Line' as const, file, recs: refLines(file) })),
        fc
          .tuple(fc.constantFrom<Framing>('RecordIO', 'TFRecord'), fc.array(binaryPayload, { maxLength: 10 }))
          .map(([split, payloads]) => ({ split, ...framedRecords(split, payloads) })),
      ),
      fc.constantFrom<'SingleRecord' | 'MultiRecord'>('SingleRecord', 'MultiRecord'),
      fc.integer({ min: 1, max: 90 }),
      cutsArb,
      async ({ split, file, recs }, strategy, max, cuts) => {
        const single = strategy === 'SingleRecord';
        const o = { single, sep: split === 'Line' && !single, max };
        // MaxPayloadInMB counts whole MiB: drive the splitter and packer with a byte limit, as readMiniBatches does.
        const source = splitRecords(chunks(file, cuts), { splitType: split, maxRecordBytes: max });
        const run = collect(
          packMiniBatches(source, { batchStrategy: strategy, maxBytes: max, lineJoined: split === 'Line' }),
        );
        const sizeOf = (r: Rec) => (single ? r.payload.length : r.framed.length);
        const tooBig = recs.filter((r) => sizeOf(r) > max);
        if (tooBig.length > 0) {
          const e = await failure(run);
          ok(e instanceof DataError, `expected a DataError, got ${String(e)}`);
          ok(
            tooBig.some((r) => r.offset === e.offset),
            `the error names offset ${e.offset}, which is no oversize record`,
          );
          return;
        }
        checkPacking(await run, recs, o);
      },
    ),
};

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of items) out.push(x);
  return out;
}

/** The Line fast path (LineBatcher, no object per record) against the general splitter + packer. */
const lineFastPath: FuzzProperty = {
  name: 'line-fast-path',
  claim: 'Line fast path (LineBatcher) == splitRecords + packMiniBatches, with and without quoted newlines',
  weight: 10,
  property: () =>
    fc.asyncProperty(
      fc.oneof(
        lineFile.map((file) => ({ file, quoted: false })),
        csvFile.map(({ file }) => ({ file, quoted: true })),
      ),
      fc.constantFrom<'SingleRecord' | 'MultiRecord'>('SingleRecord', 'MultiRecord'),
      cutsArb,
      async ({ file, quoted }, strategy, cuts) => {
        // A 1 MiB limit: nothing generated here is oversize, so both paths must agree batch for batch.
        const opts = { ...LINE_OPTS, batchStrategy: strategy, csvQuotedNewlines: quoted };
        const fast = await collectBatches(readMiniBatches(chunks(file, cuts), opts));
        const general = await collect(
          packMiniBatches(
            splitRecords(chunks(file, [...cuts].reverse()), { splitType: 'Line', csvQuotedNewlines: quoted }),
            {
              batchStrategy: strategy,
              maxBytes: 1_048_576,
              lineJoined: true,
            },
          ),
        );
        deepStrictEqual(
          fast.map((b) => hex(b.body)),
          general.map((b) => hex(b.body)),
        );
        deepStrictEqual(fast.map(batchRecords), general.map(batchRecords));
      },
    ),
};

/** Reads one shard as the sidecar does: from shardReadStart to the end of the object, in chunks. */
const shardSource = (file: Buffer, split: 'Line' | 'RecordIO', w: ShardWindow, cuts: readonly number[]) =>
  chunks(file.subarray(shardReadStart(split, w)), cuts);

const lineShards: FuzzProperty = {
  name: 'line-shards',
  claim:
    "Line shards at random cut points: the shards' records (splitter and fast-path batches) concatenated == the whole object's",
  weight: 12,
  property: () =>
    fc.asyncProperty(
      lineFile,
      fc.array(fc.nat(), { maxLength: 7 }),
      cutsArb,
      fc.constantFrom<'SingleRecord' | 'MultiRecord'>('SingleRecord', 'MultiRecord'),
      async (file, cutPoints, cuts, strategy) => {
        const expected = refLines(file).map((r) => [r.offset, hex(r.payload)]);
        const bySplitter: unknown[] = [];
        const byBatches: unknown[] = [];
        for (const window of windows(file.length, cutPoints)) {
          const recs = await collectRecords(
            splitRecords(shardSource(file, 'Line', window, cuts), { splitType: 'Line', window }),
          );
          bySplitter.push(...recs.map((r) => [r.offset, hex(r.payload)]));
          const batches = await collectBatches(
            readMiniBatches(
              shardSource(file, 'Line', window, cuts),
              { ...LINE_OPTS, batchStrategy: strategy },
              { window },
            ),
          );
          byBatches.push(...batches.flatMap(batchRecords));
        }
        deepStrictEqual(bySplitter, expected);
        deepStrictEqual(byBatches, expected);
      },
    ),
};

const recordioShards: FuzzProperty = {
  name: 'recordio-shards',
  claim:
    "RecordIO shards at random cut points (magic inside payloads): the shards' records concatenated == the whole object's",
  weight: 10,
  property: () =>
    fc.asyncProperty(
      fc.array(binaryPayload, { minLength: 1, maxLength: 10 }),
      fc.array(fc.nat(), { maxLength: 7 }),
      cutsArb,
      async (payloads, cutPoints, cuts) => {
        const { file, recs } = framedRecords('RecordIO', payloads);
        const got: unknown[] = [];
        const batched: unknown[] = [];
        for (const window of windows(file.length, cutPoints)) {
          const part = await collectRecords(
            splitRecords(shardSource(file, 'RecordIO', window, cuts), { splitType: 'RecordIO', window }),
          );
          got.push(...part.map(asTriple));
          const batches = await collectBatches(
            readMiniBatches(
              shardSource(file, 'RecordIO', window, cuts),
              { ...LINE_OPTS, splitType: 'RecordIO', contentType: 'application/x-recordio' },
              { window },
            ),
          );
          batched.push(...batches.flatMap(batchRecords));
        }
        deepStrictEqual(got, recs.map(asTriple));
        deepStrictEqual(
          batched,
          recs.map((r) => [r.offset, hex(r.framed)]),
        );
      },
    ),
};

const MiB = 1_048_576;
const planJob = (count: number, minShardMiB: number) =>
  validateRequest({
    TransformJobName: 'fuzz-plan',
    ModelName: 'm',
    TransformInput: {
      DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: 's3://bucket/in/' } },
      ContentType: 'text/csv',
      SplitType: 'Line',
    },
    TransformOutput: { S3OutputPath: 's3://bucket/out/' },
    TransformResources: { InstanceType: 'ml.m5.xlarge', InstanceCount: count },
    Extensions: { ShardMinSizeInMB: minShardMiB },
  });

const planWindows: FuzzProperty = {
  name: 'plan-windows',
  claim:
    "the planner's shard ranges tile every object exactly ([0, size), no gap, no overlap) and every work item is in exactly one partition",
  weight: 4,
  property: () =>
    fc.property(
      fc.array(fc.oneof(fc.nat({ max: 4096 }), fc.nat({ max: 4096 * MiB })), { minLength: 1, maxLength: 12 }),
      fc.integer({ min: 1, max: 12 }),
      fc.integer({ min: 0, max: 64 }),
      (sizes, count, minShard) => {
        const objects = sizes.map((size, i) => ({ uri: `s3://bucket/in/o${i}`, relativeKey: `o${i}`, size }));
        const plan = buildPlan({ job: planJob(count, minShard), objects, workUri: 's3://bucket/work/j/' });
        ok(plan.partitions.length >= 1 && plan.partitions.length <= count);
        const items = plan.partitions.flatMap((p) => p.items);
        strictEqual(
          plan.partitions.reduce((s, p) => s + p.bytes, 0),
          plan.totalBytes,
        );
        plan.objects.forEach((o, index) => {
          const mine = items.filter((i) => i.object === index).sort((a, b) => a.shard - b.shard);
          deepStrictEqual(
            mine.map((i) => i.shard),
            Array.from({ length: o.shardCount }, (_, s) => s),
          );
          if (o.shardCount === 1) {
            strictEqual(mine[0]!.range, undefined);
            return;
          }
          let at = 0;
          for (const i of mine) {
            strictEqual(i.range!.start, at, `object ${index}: a gap or overlap at ${at}`);
            ok(i.range!.end > i.range!.start, 'an empty shard');
            at = i.range!.end;
          }
          strictEqual(at, o.size, `object ${index}: shards end at ${at}, not at its size ${o.size}`);
        });
      },
    ),
};

export const PROPERTIES: readonly FuzzProperty[] = [
  lineSplit,
  csvQuotedSplit,
  framedSplit('RecordIO'),
  framedSplit('TFRecord'),
  gzipLines,
  packing,
  lineFastPath,
  lineShards,
  recordioShards,
  planWindows,
];
