import { contentKind } from '../job/content-types';
import { type Invocation, packMiniBatchGroups, StreamedMiniBatch } from './batch';
import { compileFilter } from './filter';
import { gunzip } from './gzip';
import { assertSupported, type DataPlaneOptions, MIB, streamsWholeObject } from './options';
import { LineBatcher } from './pack-lines';
import { DataRecord, type ShardWindow } from './record';
import { splitRecords } from './split';

/** Which part of an object this read covers, when it is one shard of it. */
export interface ShardRead {
  readonly window: ShardWindow;
  /**
   * The object's first line, for CsvHeader Repeat on a shard that does not start at 0 (read it
   * with readHeaderLine). Shard 0 reads its own.
   */
  readonly header?: Buffer;
}

/**
 * The input side of one object (or shard): decompress, split, CSV header handling, InputFilter, pack.
 * `source` is the object's bytes as stored (from `shardReadStart` for a shard). Yields the
 * mini-batches in order; the only StreamedMiniBatch is for SplitType None with MaxPayloadInMB 0.
 * Errors about the data are DataErrors (the object fails); a bad option combination throws Error.
 */
export async function* readMiniBatches(
  source: AsyncIterable<Buffer>,
  opts: DataPlaneOptions,
  shard?: ShardRead,
): AsyncGenerator<Invocation> {
  for await (const group of readMiniBatchGroups(source, opts, shard)) yield* group;
}

/**
 * True when readMiniBatchGroups packs the source's own chunks (Line split, no compression, no
 * InputFilter): every mini-batch then slices the chunks as read, and `onHeld` reports how far back
 * the packer still refers to them.
 */
export function packsSourceChunks(opts: DataPlaneOptions): boolean {
  return (
    opts.splitType === 'Line' &&
    opts.compressionType !== 'Gzip' &&
    !streamsWholeObject(opts) &&
    !compileFilter(opts.inputFilter, contentKind(opts.contentType), 'InputFilter', opts.jsonPathSliceEnd)
  );
}

/**
 * readMiniBatches, yielding the mini-batches each input chunk completes as one array: an await per
 * small SingleRecord batch would cost more than packing it.
 *
 * When `packsSourceChunks(opts)`, `onHeld` is called after every chunk with the absolute offset of
 * the first source byte the packer still holds (LineBatcher.heldFrom): with the mini-batches
 * yielded so far, that is everything that may refer to the source's chunks.
 */
export async function* readMiniBatchGroups(
  source: AsyncIterable<Buffer>,
  opts: DataPlaneOptions,
  shard?: ShardRead,
  onHeld?: (offset: number) => void,
): AsyncGenerator<Invocation[]> {
  assertSupported(opts);
  const data = opts.compressionType === 'Gzip' ? gunzip(source) : source;

  if (streamsWholeObject(opts)) {
    // Peek so an empty object sends nothing, like every other split type.
    const it = data[Symbol.asyncIterator]();
    let first = await it.next();
    while (!first.done && first.value.length === 0) first = await it.next();
    if (first.done) return;
    const rest = (async function* () {
      try {
        yield first.value;
        for (let n = await it.next(); !n.done; n = await it.next()) yield n.value;
      } finally {
        // A consumer that stops early (an early answer, an abort) ends the source too: an S3 read
        // must not stay open.
        await it.return?.();
      }
    })();
    yield [new StreamedMiniBatch(rest)];
    return;
  }

  const maxBytes = opts.maxPayloadInMB === 0 ? Number.POSITIVE_INFINITY : opts.maxPayloadInMB * MIB;
  const inputFilter = compileFilter(
    opts.inputFilter,
    contentKind(opts.contentType),
    'InputFilter',
    opts.jsonPathSliceEnd,
  );
  const csvHeader = opts.csvHeader ?? 'None';

  if (opts.splitType === 'Line' && !inputFilter) {
    const batcher = new LineBatcher({
      batchStrategy: opts.batchStrategy,
      maxBytes,
      csvQuotedNewlines: opts.csvQuotedNewlines,
      window: shard?.window,
      csvHeader,
      header: shard?.header,
      gridBytes: opts.batchGridBytes,
    });
    for await (const chunk of data) {
      const out = batcher.feed(chunk);
      onHeld?.(batcher.heldFrom);
      if (out.length > 0) yield out;
      if (batcher.stopped) return; // leaving the loop ends the source: nothing past the window is read
    }
    const out = batcher.end();
    if (out.length > 0) yield out;
    return;
  }

  let records: AsyncIterable<DataRecord[]> = splitRecords(data, {
    splitType: opts.splitType,
    csvQuotedNewlines: opts.csvQuotedNewlines,
    window: shard?.window,
    maxRecordBytes: maxBytes,
  });
  let header = shard?.header;
  if (csvHeader !== 'None') {
    const taken = await takeHeader(records);
    if (csvHeader === 'Repeat') header = taken.header ?? header;
    records = taken.rest;
    if (csvHeader === 'Repeat' && !header && (shard?.window.start ?? 0) > 0) {
      throw new Error('CsvHeader Repeat on a shard that does not start at 0 needs the header line');
    }
  }
  if (inputFilter) {
    const keepInput = opts.joinSource === 'Input';
    records = mapRecords(records, (r) => {
      const input = r.payload;
      return new DataRecord(
        r.offset,
        inputFilter(input, r.offset),
        0,
        0,
        undefined,
        keepInput ? input : undefined,
      );
    });
  }
  // The repeated header goes through the same InputFilter as the rows, so its columns match theirs.
  if (header && inputFilter) header = inputFilter(header, 0);
  yield* packMiniBatchGroups(records, {
    batchStrategy: opts.batchStrategy,
    maxBytes,
    lineJoined: opts.splitType === 'Line',
    header: csvHeader === 'Repeat' ? header : undefined,
    gridBytes: opts.batchGridBytes,
  });
}

/**
 * Separates the object's first line (the record at offset 0) from the rest. A read that starts past
 * 0 (a later shard) has no header line of its own.
 */
async function takeHeader(
  records: AsyncIterable<DataRecord[]>,
): Promise<{ header?: Buffer; rest: AsyncIterable<DataRecord[]> }> {
  const it = records[Symbol.asyncIterator]();
  let first = await it.next();
  while (!first.done && first.value.length === 0) first = await it.next();
  if (first.done) return { rest: (async function* () {})() };
  const batch = first.value;
  const isHeader = batch[0]!.offset === 0;
  const header = isHeader ? Buffer.from(batch[0]!.payload) : undefined;
  const head = isHeader ? batch.slice(1) : batch;
  return {
    header,
    rest: (async function* () {
      try {
        if (head.length > 0) yield head;
        for (let n = await it.next(); !n.done; n = await it.next()) yield n.value;
      } finally {
        await it.return?.();
      }
    })(),
  };
}

async function* mapRecords(
  records: AsyncIterable<DataRecord[]>,
  fn: (r: DataRecord) => DataRecord,
): AsyncGenerator<DataRecord[]> {
  for await (const batch of records) yield batch.map(fn);
}

/** The first line of an object (without its `\n`), for CsvHeader Repeat on later shards. Stops reading there. */
export async function readHeaderLine(source: AsyncIterable<Buffer>, maxBytes = MIB): Promise<Buffer> {
  const pieces: Buffer[] = [];
  let length = 0;
  for await (const chunk of source) {
    const nl = chunk.indexOf(10);
    if (nl >= 0) {
      pieces.push(chunk.subarray(0, nl));
      return Buffer.concat(pieces);
    }
    pieces.push(chunk);
    length += chunk.length;
    if (length > maxBytes) break;
  }
  if (length > maxBytes) throw new Error(`the CSV header line is longer than ${maxBytes} bytes`);
  return Buffer.concat(pieces);
}
