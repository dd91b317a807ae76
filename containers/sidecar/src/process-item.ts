import type { EffectiveParameters } from '../../../src/contract/parameters';
import {
  createOutputProcessor,
  DataError,
  dataPlaneOptions,
  type Invocation,
  MiniBatch,
  type OutputProcessor,
  packsSourceChunks,
  readMiniBatchGroups,
  shardReadStart,
} from '../../../src/dataplane';
import type { NormalizedJob } from '../../../src/contract/job';
import {
  errorsObjectUri,
  outputObjectUri,
  shardErrorsUri,
  shardOutputUri,
} from '../../../src/contract/layout';
import type { Plan, PlannedObject, WorkItem } from '../../../src/contract/plan';
import type { Counters, ItemResult } from '../../../src/contract/results';
import { writeChunks } from '../../../src/storage/common';
import type { ObjectWriter, PooledRead, Storage } from '../../../src/storage/storage';
import type { PartitionFlow } from './flow-control';
import type { ModelClient } from './model-client';

/** Extension request headers telling the model where a mini-batch came from. */
export const HEADER_OBJECT = 'x-batch-transform-object';
export const HEADER_RECORD_OFFSET = 'x-batch-transform-record-offset';
export const HEADER_RECORD_COUNT = 'x-batch-transform-record-count';

export interface ItemContext {
  readonly job: NormalizedJob;
  readonly plan: Pick<Plan, 'workUri' | 'outputUri' | 'createdAt'>;
  readonly item: WorkItem;
  readonly object: PlannedObject;
  readonly effective: EffectiveParameters;
  readonly client: ModelClient;
  /** Invocation slots and the memory budget, shared by every object of the partition. */
  readonly flow: PartitionFlow;
  readonly storage: Storage;
  readonly counters: Counters;
  readonly signal: AbortSignal;
  readonly modelExited?: (() => string | undefined) | undefined;
  /** The order the partition opened this item in: the oldest open item gets slots and budget first. */
  readonly rank?: number | undefined;
  /** Waited for once the item's input is open, before its first mini-batch is packed. */
  readonly admit?: (() => Promise<void>) | undefined;
  /** Called once every mini-batch of the item has been packed (what is left: answers and writes). */
  readonly packed?: (() => void) | undefined;
}

/** The object (or shard) failed; the message names the cause, `offset` the record where known. */
class ItemFailure extends Error {
  constructor(
    message: string,
    readonly offset?: number,
  ) {
    super(message);
  }
}

/** The model is gone: the whole partition stops. */
class FatalFailure extends Error {}

/**
 * Transforms one work item (a whole object or one shard of it): streams it from storage,
 * decompresses, splits, packs mini-batches, invokes the model with up to MaxConcurrentTransforms
 * requests in flight while writing results strictly in input order, and streams the result into a
 * multipart upload. Any failure aborts the upload, so an output exists only for an item that fully
 * succeeded. Memory stays bounded: at most MaxConcurrentTransforms bodies and their responses are
 * held, whatever the object's size.
 */
export async function processItem(
  c: ItemContext,
): Promise<{ item: ItemResult; fatal?: undefined } | { fatal: string; item?: undefined }> {
  const { job, plan, item, object, storage } = c;
  const started = performance.now();
  const sharded = object.shardCount > 1;
  const outUri = sharded
    ? shardOutputUri(plan.workUri, object.relativeKey, item.shard)
    : outputObjectUri(plan.outputUri, object.relativeKey);
  const errUri = sharded
    ? shardErrorsUri(plan.workUri, object.relativeKey, item.shard)
    : errorsObjectUri(plan.outputUri, object.relativeKey);
  const kms = job.TransformOutput.KmsKeyId ? { kmsKeyId: job.TransformOutput.KmsKeyId } : {};
  const local = { records: 0, bytesIn: 0, bytesOut: 0, failedRecords: 0 };
  const isolated: Array<{ offset: number; reason: string }> = [];
  let writer: ObjectWriter | undefined;
  try {
    // A ManifestFile may list keys relative to its prefix with `..` segments. In S3 they are plain
    // characters, but every store or tool that resolves paths (S3-compatible servers, file://, a sync
    // to disk) puts `<output>/a/../../x.out` outside the output location: refuse that object.
    if (object.relativeKey.split('/').includes('..')) {
      throw new ItemFailure(
        `its name relative to the input prefix, "${object.relativeKey}", has a ".." segment, so its output ` +
          `${outUri} would resolve outside the output location ${plan.outputUri}; rename the object`,
      );
    }
    // The output can outgrow the input (JoinSource Input); size parts for four times the input so
    // any plausible output stays within S3's 10,000 parts.
    writer = storage.createWriter(outUri, {
      ...kms,
      expectedSize: Math.max(object.size, 1) * 4,
      likelySize: item.range ? item.range.end - item.range.start : object.size,
    });
    await transform(c, writer, local, isolated);
    enforceThreshold(job, local.failedRecords, local.records + local.failedRecords, true);
    if (isolated.length > 0) {
      const lines = isolated.map((e) => JSON.stringify({ object: object.uri, ...e })).join('\n');
      await storage.put(errUri, `${lines}\n`, kms);
    }
    // An object with no records (0 bytes, or only a gzip stream of nothing) completes with an empty
    // `.out`: nothing in it failed, and every input then has its output (REFERENCE.md "Output names").
    await writer.complete();
    return {
      item: {
        object: item.object,
        shard: item.shard,
        status: 'Completed',
        records: local.records,
        failedRecords: local.failedRecords,
        bytesIn: local.bytesIn,
        bytesOut: local.bytesOut,
        durationMs: Math.round(performance.now() - started),
      },
    };
  } catch (e) {
    await writer?.abort().catch(() => {});
    if (e instanceof FatalFailure) return { fatal: e.message };
    if (c.signal.aborted && !(e instanceof ItemFailure) && !(e instanceof DataError)) {
      return { fatal: `stopped while transforming ${object.uri}` };
    }
    const offset = e instanceof ItemFailure || e instanceof DataError ? e.offset : undefined;
    const message =
      e instanceof ItemFailure || e instanceof DataError
        ? e.message
        : `unexpected error: ${(e as Error).message}`;
    return {
      item: {
        object: item.object,
        shard: item.shard,
        status: 'Failed',
        records: local.records,
        failedRecords: local.failedRecords,
        bytesIn: local.bytesIn,
        bytesOut: local.bytesOut,
        durationMs: Math.round(performance.now() - started),
        error: { message, ...(offset !== undefined ? { offset } : {}) },
      },
    };
  }
}

/** What one item has done so far: its counts as its result reports them. */
interface ItemTally {
  records: number;
  bytesIn: number;
  bytesOut: number;
  failedRecords: number;
}

/**
 * What one started mini-batch holds until its output is written: the releases of the responses it
 * read (their blocks go back to the model client once the output is written, if the writer keeps no
 * reference to them), and the budget its responses took beyond the reservation made for them.
 */
interface Held {
  readonly releases: Array<() => void>;
  /** Response bytes reserved when the mini-batch was packed (as many as its body). */
  readonly reserved: number;
  received: number;
  /** Budget taken for response bytes beyond `reserved`. */
  taken: number;
}

/** Invokes one mini-batch; returns the output bytes for it, in order. */
type Invoke = (batch: Invocation, held: Held) => Promise<Buffer[]>;

/**
 * Reads the item, packs its mini-batches and hands them to the ordered writer, which sends each
 * through `invoker` (halving and isolation) and writes the outputs in input order.
 */
async function transform(
  c: ItemContext,
  writer: ObjectWriter,
  local: ItemTally,
  isolated: Array<{ offset: number; reason: string }>,
): Promise<void> {
  const { job, item, object, effective } = c;
  const split = job.TransformInput.SplitType;
  const readStart = item.range ? shardReadStart(split, item.range) : 0;
  const opts = dataPlaneOptions(job, effective, c.plan.createdAt);
  const range = item.range ? { start: readStart, end: object.size } : undefined;
  // When the packer slices the chunks as read (Line, uncompressed, no InputFilter), a file:// object
  // is read into a few reused buffers instead of a fresh Buffer per read. A chunk is released once
  // the packer holds nothing before its end and every mini-batch that can slice it (any that starts
  // before its end) is done: its requests, retries and halves finished and its output made, in
  // input order. Outputs never point into the input (a JoinSource join copies).
  const pooled = packsSourceChunks(opts)
    ? await c.storage.readPooled?.(object.uri, range, c.signal)
    : undefined;
  const source = pooled ?? (await c.storage.read(object.uri, range, c.signal));
  await c.admit?.();
  const counted = countBytes(source, (n) => {
    local.bytesIn += n;
    c.counters.bytesIn += n;
  });
  const output: OutputProcessor = createOutputProcessor(opts);
  /** The first source byte the packer still holds; nothing is released before it is known. */
  let heldFrom = Number.NEGATIVE_INFINITY;
  const groups = readMiniBatchGroups(
    counted,
    opts,
    item.range ? { window: item.range } : undefined,
    (offset) => {
      heldFrom = offset;
    },
  );
  const invoke = invoker(c, output, local, isolated);
  await writeInOrder(c, groups, invoke, writer, local, { pooled, heldFrom: () => heldFrom });
}

/**
 * Invoke, with halving and isolation when asked for: sends a mini-batch (retries are the model
 * client's). By default a 413 or a timeout that outlasts InvocationsMaxRetries fails the item, as
 * SageMaker does (docs/JOB.md, "Halving"). With Extensions.SplitBatchOnFailure, or a failed-records
 * threshold set (isolation needs bisection), a mini-batch the model cannot take whole is halved
 * down to single records; with a threshold, records that still fail on their own go to `isolated`
 * instead of failing the item.
 */
function invoker(
  c: ItemContext,
  output: OutputProcessor,
  local: ItemTally,
  isolated: Array<{ offset: number; reason: string }>,
): Invoke {
  const { job, object } = c;
  const isolate = job.Extensions.MaxFailedRecordsPerObject > 0 || job.Extensions.MaxFailedRecordsPercent > 0;
  const halving = isolate || job.Extensions.SplitBatchOnFailure;
  const baseHeaders: Record<string, string> = {
    'content-type': job.TransformInput.ContentType || 'application/octet-stream',
    ...(job.TransformOutput.Accept ? { accept: job.TransformOutput.Accept } : {}),
    [HEADER_OBJECT]: encodeURI(object.uri),
  };

  const invoke: Invoke = async (batch, held) => {
    const headers = {
      ...baseHeaders,
      [HEADER_RECORD_OFFSET]: String(batch.firstOffset),
      [HEADER_RECORD_COUNT]: String(batch.count),
    };
    const canHalve = halving && batch instanceof MiniBatch && batch.count > 1;
    // A MiniBatch goes out as its parts (slices of the input chunks, no copy) with a
    // Content-Length; an array can be sent again on retry. A streamed object goes out chunked, once
    // (the client frames each body by its kind).
    const outcome =
      batch instanceof MiniBatch
        ? await c.client.invoke(batch.parts.length === 1 ? batch.parts[0]! : batch.parts, headers, {
            signal: c.signal,
            handOver: (o) => o.kind === 'timeout' && canHalve,
          })
        : await c.client.invokeOnce(batch.body, headers, c.signal);
    if (outcome.kind === 'ok') {
      held.releases.push(outcome.release);
      // A response larger than its body outgrows the reservation: count the excess now (it is in
      // memory already), which holds back the next packing until outputs are written.
      held.received += outcome.byteLength;
      const over = held.received - held.reserved - held.taken;
      if (over > 0) {
        c.flow.budget.take(over);
        held.taken += over;
      }
      local.records += batch.count;
      c.counters.records += batch.count;
      if (batch instanceof MiniBatch) return output.processChunks(batch, outcome.body);
      const pieces: Buffer[] = [];
      for await (const piece of output.processStream(chunksOf(outcome.body))) pieces.push(piece);
      return pieces;
    }
    if (outcome.kind === 'connection') {
      const gone = c.modelExited?.();
      const alive = gone ? gone : await c.client.ping();
      if (alive !== true)
        throw new FatalFailure(`the model stopped answering while transforming ${object.uri}: ${alive}`);
    }
    // A mini-batch the model cannot take whole (413, or too slow): halve it, down to one record.
    if (canHalve && (outcome.kind === 'too-large' || outcome.kind === 'timeout' || isolate)) {
      const [a, b] = (batch as MiniBatch).split();
      return [...(await invoke(a, held)), ...(await invoke(b, held))];
    }
    const where =
      batch.count === 1
        ? `record at byte offset ${batch.firstOffset}`
        : `mini-batch of ${batch.count} records starting at byte offset ${batch.firstOffset}`;
    const reason = `${outcome.message} for the ${where}`;
    if (isolate && batch.count === 1) {
      local.failedRecords++;
      c.counters.failedRecords++;
      isolated.push({ offset: batch.firstOffset, reason });
      enforceThreshold(job, local.failedRecords, local.records + local.failedRecords, false);
      return [];
    }
    // Say how to get past a mini-batch the model refuses whole, without changing the default.
    const hint =
      !halving && batch.count > 1 && (outcome.kind === 'too-large' || outcome.kind === 'timeout')
        ? ' (Extensions.SplitBatchOnFailure halves such a mini-batch down to single records)'
        : '';
    throw new ItemFailure(`${reason}${hint}`, batch.firstOffset);
  };
  return invoke;
}

/**
 * The ordered writer. The packer's side starts each mini-batch as soon as an invocation slot is free
 * (slots are shared by all the partition's objects); a writer beside it writes each output once
 * every earlier one is written. Neither waits for the other, so the next mini-batch is packed while
 * the slots are busy and an output is written while the next request goes out: what bounds them is
 * the partition's memory budget. Before the packer is asked for more, the bytes it may bring (a
 * body of up to MaxPayloadInMB and a response as large) are reserved, then trimmed to what it
 * brought; they are released once that output is written. Once an output is written, the pooled
 * input chunks nothing pending needs go back to the reader, and its responses' blocks to the model
 * client (when the writer keeps no reference to them).
 */
async function writeInOrder(
  c: ItemContext,
  groups: AsyncIterable<Invocation[]>,
  invoke: Invoke,
  writer: ObjectWriter,
  local: { bytesOut: number },
  input: { pooled: PooledRead | undefined; heldFrom: () => number },
): Promise<void> {
  const reserve = 2 * c.flow.payloadBytes;
  /**
   * The invocations started and not yet written, in input order: each one's output, the first
   * byte of the input it can refer to, what it holds, and the budget its body and response took.
   */
  const pending: Array<{ output: Promise<Buffer[]>; from: number; held: Held; cost: number }> = [];
  /** firstOffset of the current group's next mini-batch not started yet (Infinity: none). */
  let nextFrom = Number.POSITIVE_INFINITY;
  /**
   * While the packer is being asked for a group, the first byte it held when asked: the group it
   * is making starts there or later, and may already be past `heldFrom` before it is seen here.
   */
  let pullingFrom: number | undefined;
  /** Budget this item holds: released output by output, and the rest when the item ends. */
  let budgetHeld = 0;
  /** Mini-batches of the current group not started (given up when the item fails). */
  let unstarted = 0;
  const release = (bytes: number) => {
    budgetHeld -= bytes;
    c.flow.budget.release(bytes);
  };
  let producing = true;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const writes = (async () => {
    for (;;) {
      const head = pending[0];
      if (!head) {
        if (!producing) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        continue;
      }
      try {
        const pieces = await head.output;
        if (!failure) {
          pending.shift();
          // Its answer is in and its output made (outputs never point into the input), so the
          // input it sliced is free before the output is written.
          const packerFrom = pullingFrom ?? input.heldFrom();
          input.pooled?.release(Math.min(packerFrom, pending[0]?.from ?? nextFrom));
          await write(writer, pieces, local, c.counters);
          if (writer.releasesChunks) for (const r of head.held.releases) r();
        } else pending.shift();
      } catch (error) {
        // The item has failed: the rest is only waited for, never written, and the pooled
        // reader's buffers are not released (nor read into) again.
        failure ??= { error };
        if (pending[0] === head) pending.shift();
      }
      release(head.cost);
      c.flow.budget.release(head.held.taken); // taken by the invoker, outside this item's reservations
      c.flow.packed.add(-1);
    }
  })();
  try {
    const it = groups[Symbol.asyncIterator]();
    try {
      for (;;) {
        if (c.signal.aborted) throw c.signal.reason ?? new Error('stopped');
        await c.flow.budget.acquire(reserve, c.rank);
        budgetHeld += reserve;
        if (failure) break;
        pullingFrom = input.heldFrom();
        const next = await it.next();
        pullingFrom = undefined;
        if (next.done) {
          release(reserve);
          c.packed?.();
          break;
        }
        const group = next.value;
        c.flow.packed.add(group.length);
        unstarted = group.length;
        nextFrom = group[0]?.firstOffset ?? Number.POSITIVE_INFINITY;
        const costs = group.map((b) => (b instanceof MiniBatch ? 2 * b.byteLength : 0));
        const cost = costs.reduce((a, b) => a + b, 0);
        if (cost <= reserve) release(reserve - cost);
        else {
          c.flow.budget.take(cost - reserve);
          budgetHeld += cost - reserve;
        }
        for (let k = 0; k < group.length; k++) {
          const batch = group[k]!;
          if (c.signal.aborted) throw c.signal.reason ?? new Error('stopped');
          await c.flow.slots.acquire(c.rank);
          if (failure) {
            c.flow.slots.release();
            break;
          }
          const held: Held = { releases: [], reserved: costs[k]! / 2, received: 0, taken: 0 };
          const output = invoke(batch, held).finally(() => c.flow.slots.release());
          output.catch(() => {}); // observed by the writer when its turn comes
          pending.push({ output, from: batch.firstOffset, held, cost: costs[k]! });
          unstarted--;
          nextFrom = group[k + 1]?.firstOffset ?? Number.POSITIVE_INFINITY;
          poke();
        }
        if (failure) break;
      }
    } finally {
      pullingFrom = undefined;
      producing = false;
      poke();
      await it.return?.().catch(() => {});
    }
    await writes;
    if (failure) throw failure.error;
  } finally {
    // On failure, let the invocations already started settle before the upload is aborted.
    producing = false;
    poke();
    await writes;
    if (budgetHeld > 0) release(budgetHeld);
    c.flow.packed.add(-unstarted);
  }
}

async function write(
  writer: ObjectWriter,
  pieces: readonly Buffer[],
  local: { bytesOut: number },
  counters: Counters,
) {
  // One call for the mini-batch's output (one writev for a file): a response arrives as ~64 KiB
  // socket reads, and a write per piece would cost a thread-pool round trip each.
  await writeChunks(writer, pieces);
  let bytes = 0;
  for (const piece of pieces) bytes += piece.length;
  local.bytesOut += bytes;
  counters.bytesOut += bytes;
}

/** Extension: the object fails once isolated record failures pass either threshold. */
function enforceThreshold(job: NormalizedJob, failed: number, seen: number, atEnd: boolean): void {
  const { MaxFailedRecordsPerObject: maxCount, MaxFailedRecordsPercent: maxPercent } = job.Extensions;
  if (failed === 0) return;
  if (maxCount > 0 && failed > maxCount) {
    throw new ItemFailure(`${failed} records failed, more than MaxFailedRecordsPerObject (${maxCount})`);
  }
  if (atEnd && maxPercent > 0 && (failed * 100) / Math.max(1, seen) > maxPercent) {
    throw new ItemFailure(
      `${failed} of ${seen} records failed, more than MaxFailedRecordsPercent (${maxPercent}%)`,
    );
  }
}

async function* countBytes(source: AsyncIterable<Buffer>, add: (n: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    add(chunk.length);
    yield chunk;
  }
}

async function* chunksOf(chunks: readonly Buffer[]): AsyncGenerator<Buffer> {
  yield* chunks;
}
