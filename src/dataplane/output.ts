import { contentKind } from '../job/content-types';
import type { MiniBatch } from './batch';
import { joinParts, NEWLINE } from './chunks';
import { withoutCR } from './csv';
import { DataError } from './errors';
import { compileFilter, parseJson, selectOrFail } from './filter';
import { parseJsonPath } from '../jsonpath/jsonpath';
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

  const assemble = (bytes: Buffer): Buffer =>
    line && (bytes.length === 0 || bytes[bytes.length - 1] !== 10) ? Buffer.concat([bytes, NEWLINE]) : bytes;

  const processStream = async function* (response: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let last = -1;
    for await (const chunk of response) {
      if (chunk.length > 0) last = chunk[chunk.length - 1]!;
      yield chunk;
    }
    if (line && last !== 10) yield NEWLINE;
  };

  // Nothing needs records: the response is the output, unparsed.
  if (!join && !hasFilter) {
    const process = (batch: MiniBatch, response: Buffer) =>
      assemble(repeat ? dropHeaderOutput(batch, response, csvAwareLines) : response);
    return {
      process,
      processChunks: (batch, response) => {
        if (repeat) return [process(batch, joinParts(response))];
        let last = -1;
        for (const chunk of response) if (chunk.length > 0) last = chunk[chunk.length - 1]!;
        return line && last !== 10 ? [...response, NEWLINE] : [...response];
      },
      processStream,
    };
  }

  let perRecord: (batch: MiniBatch, i: number, output: Buffer) => Buffer;
  if (!join) {
    const filter = compileFilter(opts.outputFilter, outKind, 'OutputFilter');
    perRecord = (batch, i, output) => (filter ? filter(output, batch.recordOffset(i)) : output);
  } else if (inKind === 'csv') {
    // CSV join: the output is appended to the input row; the OutputFilter then picks columns of both.
    const filter = compileFilter(opts.outputFilter, 'csv', 'OutputFilter');
    perRecord = (batch, i, output) => {
      const joined = Buffer.concat([withoutCR(batch.input(i)), COMMA, output]);
      return filter ? filter(joined, batch.recordOffset(i)) : joined;
    };
  } else if (inKind === 'json' || inKind === 'jsonlines') {
    const path = hasFilter ? parseJsonPath(opts.outputFilter!, { csv: false }) : undefined;
    const outputIsJson = outKind === 'json' || outKind === 'jsonlines';
    perRecord = (batch, i, output) => {
      const offset = batch.recordOffset(i);
      const fail = (what: string) =>
        new DataError(`JoinSource Input: ${what} (record at byte offset ${offset})`, offset);
      const input = parseJson(batch.input(i), (why) => fail(`the input record ${why}`));
      const result = outputIsJson
        ? parseJson(output, (why) => fail(`the model output for the record ${why}: ${preview(output)}`))
        : output.toString('utf8');
      const joined =
        typeof input === 'object' && input !== null && !Array.isArray(input)
          ? { ...input, SageMakerOutput: result }
          : { SageMakerInput: input, SageMakerOutput: result };
      const selected = path
        ? selectOrFail(
            path,
            joined,
            (m) =>
              new DataError(
                `OutputFilter ${opts.outputFilter} cannot apply to the joined record at byte offset ${offset}: ${m}`,
                offset,
              ),
          )
        : joined;
      return Buffer.from(JSON.stringify(selected));
    };
  } else {
    throw new Error('JoinSource Input applies to text/csv, application/json or application/jsonlines input');
  }

  const splitOutputs = (batch: MiniBatch, response: Buffer): Buffer[] => {
    const n = batch.count;
    if (n === 1 && !repeat) return [trimLineEnd(response)];
    if (outKind === 'json' && !repeat) {
      const parsed = tryParseJson(response);
      if (Array.isArray(parsed) && parsed.length === n)
        return parsed.map((v) => Buffer.from(JSON.stringify(v)));
    }
    const lines = responseLines(response, csvAwareLines);
    if (repeat && lines.length === n + 1) lines.shift();
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

function tryParseJson(b: Buffer): unknown {
  try {
    return JSON.parse(b.toString('utf8'));
  } catch {
    return undefined;
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
