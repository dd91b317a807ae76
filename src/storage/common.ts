import type { ByteRange, ObjectWriter, Storage, WriterOptions } from './storage';

/**
 * Pieces both storage implementations share: the not-found error callers can test for, range
 * validation, and the streamed concatenation used when a server-side copy is not possible.
 */

/** Thrown by `read`/`readAll`/`concat` when an object does not exist, whatever the backend. */
export class ObjectNotFoundError extends Error {
  override readonly name = 'ObjectNotFoundError';
  constructor(
    readonly uri: string,
    options?: { cause?: unknown },
  ) {
    super(`no object at ${uri}`, options);
  }
}

/** Rejects malformed ranges before any I/O, so both backends fail the same way. */
export function checkRange(uri: string, range: ByteRange): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new RangeError(`invalid byte range [${start}, ${end}) for ${uri}: need integers 0 <= start <= end`);
  }
}

/**
 * A range that starts at or past the end of the object. S3 answers 416 there; the file backend
 * mirrors it. A range that merely ends past the object is clamped, as S3 does.
 */
export function unsatisfiableRange(uri: string, range: ByteRange, size: number): RangeError {
  return new RangeError(
    `byte range [${range.start}, ${range.end}) starts past the end of ${uri} (${size} bytes)`,
  );
}

/**
 * Copies `sources` in order into `target` through one streamed writer: memory stays bounded by the
 * writer's buffering whatever the sizes. The target appears only if every byte arrived.
 */
export async function concatStreamed(
  storage: Pick<Storage, 'read' | 'createWriter'>,
  sources: readonly string[],
  target: string,
  opts: WriterOptions = {},
): Promise<void> {
  const writer: ObjectWriter = storage.createWriter(target, opts);
  try {
    for (const source of sources) {
      const body = await storage.read(source);
      for await (const chunk of body) await writer.write(chunk as Buffer);
    }
    await writer.complete();
  } catch (err) {
    try {
      await writer.abort();
    } catch (abortErr) {
      throw new AggregateError([err, abortErr], `concatenating into ${target} failed and so did its cleanup`);
    }
    throw err;
  }
}

/**
 * Both of this package's writers take several chunks in one call (the file writer makes them one
 * `writev`, the S3 writer waits for room once); a writer without `writeMany` (a test double, a
 * wrapper) is written one chunk at a time.
 */
/** Writes `chunks` in order to `writer`, in one call when the writer can take many. */
export async function writeChunks(writer: ObjectWriter, chunks: readonly Buffer[]): Promise<void> {
  if (writer.writeMany) return writer.writeMany(chunks);
  for (const chunk of chunks) if (chunk.length > 0) await writer.write(chunk);
}

/** Orders keys as S3 does: by their UTF-8 bytes (JavaScript's `<` compares UTF-16 units instead). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * The buffers of a pooled read (`PooledRead`): each is lent out as a chunk ending at an absolute
 * offset, and comes back for reuse once the caller has released every byte before that end.
 */
export class LentBuffers {
  readonly #free: Buffer[] = [];
  /** Chunks lent and not released, in order, with the absolute offset each ends at. */
  readonly #out: Array<{ readonly buffer: Buffer; readonly end: number }> = [];
  #released = 0;

  /** A buffer nothing refers to any more, to read into again; undefined when none is. */
  reuse(): Buffer | undefined {
    return this.#free.pop();
  }

  lend(buffer: Buffer, end: number): void {
    this.#out.push({ buffer, end });
  }

  release(offset: number): void {
    const out = this.#out;
    let n = this.#released;
    while (n < out.length && out[n]!.end <= offset) this.#free.push(out[n++]!.buffer);
    // Compact in bulk rather than a shift per chunk.
    if (n > 64 || n === out.length) {
      out.splice(0, n);
      n = 0;
    }
    this.#released = n;
  }
}
