import { randomUUID } from 'node:crypto';
import { type ContentKind, contentKind } from '../job/content-types';
import type { MiniBatch } from './batch';
import { joinParts, NEWLINE } from './chunks';
import { withoutCR } from './csv';
import { DataError } from './errors';
import { checkUtf8, compileFilter, selectText } from './filter';
import { JsonKind, JsonTape, JsonTextError } from '../jsonpath/json-text';
import { JsonTextSelector, parseJsonPath } from '../jsonpath/jsonpath';
import { lineScanner } from './line';
import { assertSupported, type DataPlaneOptions } from './options';

const COMMA = Buffer.from(',');

/**
 * Turns model responses into output bytes, per mini-batch, in batch order:
 * model response → split per record (only when something needs records) → JoinSource → OutputFilter
 * → AssembleWith.
 *
 * AssembleWith Line: the output of every response ends with exactly one `\n`: we append one unless
 * the response already ends with `\n`. With SingleRecord that is one line per record; with
 * MultiRecord a model that answers one line per record gives one line per record, with or without a
 * final newline, and never blank lines between batches. When responses are split per record (join or
 * OutputFilter), every record's output is one line. AssembleWith None: bytes as they are, concatenated.
 */
export interface OutputProcessor {
  /** The bytes to append to the object's output for this mini-batch's response. */
  process(batch: MiniBatch, response: Buffer): Buffer;
  /**
   * `process` for a response that arrived in chunks: when nothing needs the response whole (no join,
   * filter or repeated header) the chunks pass through as they are, without being joined.
   */
  processChunks(batch: MiniBatch, response: readonly Buffer[]): Buffer[];
  /** For a StreamedMiniBatch: the response passed through as it arrives, plus the Line terminator. */
  processStream(response: AsyncIterable<Buffer>): AsyncGenerator<Buffer>;
}

export function createOutputProcessor(opts: DataPlaneOptions): OutputProcessor {
  assertSupported(opts);
  const inKind = contentKind(opts.contentType);
  const outKind = contentKind(opts.accept ?? opts.contentType);
  const line = opts.assembleWith === 'Line';
  const repeat = opts.csvHeader === 'Repeat';
  const join = opts.joinSource === 'Input';
  const hasFilter = opts.outputFilter !== undefined && opts.outputFilter !== '' && opts.outputFilter !== '$';
  const csvAwareLines = outKind === 'csv' && opts.csvQuotedNewlines === true;
  const inference = opts.inferenceTime !== undefined;

  const assemble = (batch: MiniBatch, bytes: Buffer): Buffer =>
    line && needsLineEnd(batch, [bytes]) ? Buffer.concat([bytes, NEWLINE]) : bytes;

  const processStream = async function* (response: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let last = -1;
    for await (const chunk of response) {
      if (chunk.length > 0) last = chunk[chunk.length - 1]!;
      yield chunk;
    }
    if (line && last !== 10) yield NEWLINE;
  };

  // Nothing needs records: the response is the output, unparsed.
  if (!join && !hasFilter && !inference) {
    const process = (batch: MiniBatch, response: Buffer) =>
      assemble(batch, repeat ? dropHeaderOutput(batch, response, csvAwareLines) : response);
    return {
      process,
      processChunks: (batch, response) => {
        if (repeat) return [process(batch, joinParts(response))];
        return line && needsLineEnd(batch, response) ? [...response, NEWLINE] : [...response];
      },
      processStream,
    };
  }

  let perRecord: (batch: MiniBatch, i: number, output: Buffer) => Buffer;
  if (!join) {
    const filter = compileFilter(opts.outputFilter, outKind, 'OutputFilter', opts.jsonPathSliceEnd);
    perRecord = (batch, i, output) => (filter ? filter(output, batch.recordOffset(i)) : output);
  } else if (inKind === 'csv') {
    // CSV join: the output is appended to the input row; the OutputFilter then picks columns of both.
    const filter = compileFilter(opts.outputFilter, 'csv', 'OutputFilter', opts.jsonPathSliceEnd);
    perRecord = (batch, i, output) => {
      const joined = Buffer.concat([withoutCR(batch.input(i)), COMMA, output]);
      return filter ? filter(joined, batch.recordOffset(i)) : joined;
    };
  } else if (inKind === 'json' || inKind === 'jsonlines') {
    const selector = hasFilter
      ? new JsonTextSelector(
          parseJsonPath(opts.outputFilter!, { csv: false, sliceEnd: opts.jsonPathSliceEnd }),
        )
      : undefined;
    const joiner = new JsonJoiner(outKind === 'json' || outKind === 'jsonlines');
    perRecord = (batch, i, output) => {
      const offset = batch.recordOffset(i);
      const joined = joiner.join(batch.input(i), output, offset);
      if (!selector) return joined;
      const fail = (m: string) =>
        new DataError(
          `OutputFilter ${opts.outputFilter} cannot apply to the joined record at byte offset ${offset}: ${m}`,
          offset,
        );
      return selectText(selector, joined, (why) => fail(`it ${why}`), fail);
    };
  } else {
    throw new Error('JoinSource Input applies to text/csv, application/json or application/jsonlines input');
  }
  if (inference) {
    // The record as written (joined and filtered) is what gets the ID: a CSV join is CSV, a JSON join JSON.
    const recordKind = join ? (inKind === 'csv' ? 'csv' : 'json') : outKind;
    const append = inferenceIdAppender(recordKind, opts.inferenceTime!);
    const base = perRecord;
    perRecord = (batch, i, output) => append(base(batch, i, output), batch.recordOffset(i));
  }

  // SingleRecord (and SplitType None, one record per object) sends a bare record: the whole response
  // is its output. MultiRecord responses are split by the same rule whatever the batch holds, so a
  // record alone in its mini-batch (the last of an object, or isolated by halving) gets the same
  // output as when it shares one: a one-element JSON array gives its element, one line gives itself.
  const wholeResponse = opts.batchStrategy === 'SingleRecord' || opts.splitType === 'None';
  const splitOutputs = (batch: MiniBatch, response: Buffer): Buffer[] => {
    const n = batch.count;
    if (wholeResponse && !repeat) return [trimLineEnd(response)];
    if (outKind === 'json' && !repeat) {
      const elements = arrayElements(response, n);
      if (elements) return elements;
    }
    const lines = responseLines(response, csvAwareLines);
    if (repeat && lines.length === n + 1) lines.shift();
    // An empty last record: a response whose final `\n` ends the line before it answered it with ''.
    if (lines.length === n - 1 && batch.endsWithEmptyRecord && endsLine(response)) lines.push(EMPTY);
    if (lines.length !== n) throw countMismatch(batch, lines.length, outKind === 'json' && !repeat, repeat);
    return lines;
  };

  const perRecordPieces = (batch: MiniBatch, response: Buffer): Buffer[] => {
    const outputs = splitOutputs(batch, response);
    const pieces: Buffer[] = [];
    for (let i = 0; i < outputs.length; i++) {
      pieces.push(perRecord(batch, i, outputs[i]!));
      if (line) pieces.push(NEWLINE);
    }
    return pieces;
  };
  return {
    process: (batch, response) => Buffer.concat(perRecordPieces(batch, response)),
    processChunks: (batch, response) => perRecordPieces(batch, joinParts(response)),
    processStream,
  };
}

const EMPTY = Buffer.alloc(0);

const endsLine = (b: Buffer) => b.length === 0 || b[b.length - 1] === 10;

/**
 * AssembleWith Line: whether a mini-batch's response (in chunks) needs a `\n` to end its output.
 * One is added unless the response ends with `\n`. A batch whose last record is empty is the one
 * case where that `\n` may not be a line end: an echo of `a\nb\n` (records `a`, `b` and an empty
 * one) answers the empty record with the empty text after it. There the response ends its output
 * only if it has a `\n` per record; otherwise one is added. So an empty line is never lost, and the
 * output is the same wherever mini-batch and shard boundaries fall (issue 16 §7). Counting runs only
 * for such batches: the common case is one byte compare.
 */
function needsLineEnd(batch: MiniBatch, response: readonly Buffer[]): boolean {
  let last = -1;
  for (const chunk of response) if (chunk.length > 0) last = chunk[chunk.length - 1]!;
  if (last !== 10) return true;
  if (!batch.endsWithEmptyRecord) return false;
  let newlines = 0;
  for (const chunk of response)
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) newlines++;
  return newlines < batch.count;
}

/**
 * CsvHeader Repeat without per-record work: a response of count + 1 lines starts with an output for
 * the header line (say a column name), which is dropped; a response of count lines is kept as it is.
 */
function dropHeaderOutput(batch: MiniBatch, response: Buffer, csvAware: boolean): Buffer {
  const scan = lineScanner(csvAware);
  let lines = 0;
  let firstEnd = -1;
  for (let i = 0; i < response.length; ) {
    const j = scan.next(response, i);
    if (firstEnd < 0) firstEnd = j < 0 ? response.length : j;
    lines++;
    if (j < 0) break;
    i = j + 1;
  }
  if (lines === batch.count) return response;
  if (lines === batch.count + 1) return response.subarray(Math.min(firstEnd + 1, response.length));
  throw countMismatch(batch, lines, false, true);
}

/** Lines of a response: `\n`-separated, a `\r` before the `\n` dropped, a final empty segment ignored. */
function responseLines(response: Buffer, csvAware: boolean): Buffer[] {
  const scan = lineScanner(csvAware);
  const out: Buffer[] = [];
  let i = 0;
  while (i < response.length) {
    const j = scan.next(response, i);
    if (j < 0) {
      out.push(withoutCR(response.subarray(i)));
      break;
    }
    out.push(withoutCR(response.subarray(i, j)));
    i = j + 1;
  }
  return out;
}

function trimLineEnd(b: Buffer): Buffer {
  return b.length > 0 && b[b.length - 1] === 10 ? withoutCR(b.subarray(0, b.length - 1)) : b;
}

/**
 * The elements of a response that is a JSON array of exactly n elements, each as the model wrote it
 * (a view of the response); undefined for any other response.
 */
function arrayElements(response: Buffer, n: number): Buffer[] | undefined {
  const tape = arrayTape;
  try {
    tape.scan(response);
  } catch (e) {
    if (e instanceof JsonTextError) return undefined;
    throw e;
  }
  if (tape.kind(0) !== JsonKind.Array || tape.count(0) !== n) return undefined;
  const out: Buffer[] = [];
  for (let i = 0, v = 1; i < n; i++, v = tape.next(v)) out.push(tape.bytes(v));
  return out;
}

const arrayTape = new JsonTape();

const OUTPUT_MEMBER = Buffer.from('"SageMakerOutput":');
const NEXT_OUTPUT_MEMBER = Buffer.from(',"SageMakerOutput":');
const INPUT_MEMBER = Buffer.from('{"SageMakerInput":');
const CLOSE_OBJECT = Buffer.from('}');
const OUTPUT_NAME = 'SageMakerOutput';
const OUTPUT_NAME_BYTES = Buffer.from(OUTPUT_NAME);

/**
 * JoinSource Input for JSON records, on their text: the input record's bytes are copied as written
 * and the model's output is inserted as a `SageMakerOutput` member (SageMaker's developer guide,
 * https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html). An input that
 * is not an object becomes `{"SageMakerInput":<input>,"SageMakerOutput":<output>}`. An input that
 * already has a `SageMakerOutput` member (the guide reserves the name: "the data in the input file
 * might be overwritten") gets its value replaced in place. A JSON output is copied as the model wrote
 * it; any other output becomes a JSON string.
 */
class JsonJoiner {
  private readonly tape = new JsonTape();
  private readonly outputTape = new JsonTape();
  private readonly parts: Buffer[] = [];

  constructor(private readonly outputIsJson: boolean) {}

  join(input: Buffer, output: Buffer, offset: number): Buffer {
    const fail = (what: string) =>
      new DataError(`JoinSource Input: ${what} (record at byte offset ${offset})`, offset);
    // The input first: a broken input record is named as such even when the output is broken too.
    const tape = this.tape;
    const invalidInput = (why: string) => fail(`the input record ${why}`);
    checkUtf8(input, invalidInput);
    scanOrFail(tape, input, invalidInput);
    let value: Buffer;
    if (this.outputIsJson) {
      const invalid = (why: string) => fail(`the model output for the record ${why}: ${preview(output)}`);
      checkUtf8(output, invalid);
      scanOrFail(this.outputTape, output, invalid);
      value = this.outputTape.bytes(0);
    } else {
      value = Buffer.from(JSON.stringify(output.toString('utf8')));
    }
    const start = tape.start(0);
    const end = tape.end(0);
    const parts = this.parts;
    parts.length = 0;
    if (tape.kind(0) !== JsonKind.Object) {
      parts.push(INPUT_MEMBER, input.subarray(start, end), NEXT_OUTPUT_MEMBER, value, CLOSE_OBJECT);
    } else if (tape.count(0) === 0) {
      parts.push(input.subarray(start, start + 1), OUTPUT_MEMBER, value, input.subarray(start + 1, end));
    } else {
      let copied = start;
      let replaced = false;
      let lastValueEnd = start;
      for (let i = 0, key = 1; i < tape.count(0); i++, key = tape.next(key + 1)) {
        if (tape.keyIs(key, OUTPUT_NAME, OUTPUT_NAME_BYTES)) {
          parts.push(input.subarray(copied, tape.start(key + 1)), value);
          copied = tape.end(key + 1);
          replaced = true;
        }
        lastValueEnd = tape.end(key + 1);
      }
      if (!replaced) {
        parts.push(input.subarray(start, lastValueEnd), NEXT_OUTPUT_MEMBER, value);
        copied = lastValueEnd;
      }
      parts.push(input.subarray(copied, end));
    }
    const joined = Buffer.concat(parts);
    parts.length = 0;
    return joined;
  }
}

const ID_MEMBER = Buffer.from('"SageMakerInferenceId":"');
const TIME_MEMBER = Buffer.from('","SageMakerInferenceTime":"');
const WRAP_OUTPUT = Buffer.from('{"SageMakerOutput":');

/**
 * DataCaptureConfig.GenerateInferenceId: each output record gets a random UUID and the job start time
 * (SageMaker's developer guide,
 * https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-batch.html). A CSV record
 * gets `,<id>,<time>` after it; a JSON object gets `"SageMakerInferenceId"` and `"SageMakerInferenceTime"`
 * members before its closing `}`. The record's bytes are otherwise kept as they are. A JSON record that
 * is not an object (a bare score) has nowhere to put members, so it becomes
 * `{"SageMakerOutput":<record>,...}`, the shape JoinSource Input gives a non-object.
 */
function inferenceIdAppender(kind: ContentKind, time: string): (record: Buffer, offset: number) => Buffer {
  if (kind === 'csv') {
    const tail = Buffer.from(`,${time}`);
    return (record) => Buffer.concat([record, COMMA, Buffer.from(randomUUID()), tail]);
  }
  if (kind !== 'json' && kind !== 'jsonlines') {
    throw new Error('GenerateInferenceId applies to CSV, JSON or JSON Lines output');
  }
  const tape = new JsonTape();
  const close = Buffer.from(`${time}"}`);
  return (record, offset) => {
    const invalid = (why: string) =>
      new DataError(
        `GenerateInferenceId: the output record at byte offset ${offset} ${why}: ${preview(record)}`,
        offset,
      );
    checkUtf8(record, invalid);
    scanOrFail(tape, record, invalid);
    const id = Buffer.from(randomUUID());
    const start = tape.start(0);
    const end = tape.end(0);
    if (tape.kind(0) !== JsonKind.Object) {
      return Buffer.concat([
        WRAP_OUTPUT,
        record.subarray(start, end),
        COMMA,
        ID_MEMBER,
        id,
        TIME_MEMBER,
        close,
      ]);
    }
    // Everything up to the closing `}` is kept, whitespace included; an empty object takes no comma.
    const head = record.subarray(0, end - 1);
    return Buffer.concat([
      head,
      tape.count(0) === 0 ? EMPTY : COMMA,
      ID_MEMBER,
      id,
      TIME_MEMBER,
      close,
      record.subarray(end),
    ]);
  };
}

function scanOrFail(tape: JsonTape, text: Buffer, invalid: (why: string) => Error): void {
  try {
    tape.scan(text);
  } catch (e) {
    if (e instanceof JsonTextError) throw invalid(`is not valid JSON (${e.message})`);
    throw e;
  }
}

function countMismatch(batch: MiniBatch, got: number, jsonArray: boolean, repeat: boolean): DataError {
  const n = batch.count;
  const want = repeat
    ? `${n} lines (or ${n + 1} with a header line first, for CsvHeader Repeat)`
    : jsonArray
      ? `a JSON array of ${n} elements or ${n} lines`
      : `${n} lines`;
  return new DataError(
    `the model's response to the mini-batch of ${n} records starting at byte offset ${batch.firstOffset} ` +
      `has ${got} lines; expected ${want}, one output per record`,
    batch.firstOffset,
  );
}

function preview(b: Buffer): string {
  const s = b.subarray(0, 80).toString('utf8');
  return JSON.stringify(b.length > 80 ? `${s}…` : s);
}
