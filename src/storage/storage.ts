import type { Readable } from 'node:stream';

/**
 * The one small interface every stage uses to reach object storage. Two implementations:
 * `s3.ts` (AWS SDK v3, any S3-compatible endpoint) and `file.ts` (a local folder tree).
 * URIs are full locations (`s3://bucket/key` or `file:///path`), see `uri.ts`.
 */

export interface StoredObject {
  readonly uri: string;
  readonly size: number;
  /** When the object was written; `head` gives it (a stopped job's cleanup tells its own outputs by it). */
  readonly lastModified?: Date;
}

/** A byte range, start inclusive, end exclusive (unlike HTTP's inclusive Range header). */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

export interface WriterOptions {
  /** SSE-KMS key for the object (S3 only). */
  readonly kmsKeyId?: string;
  readonly contentType?: string;
  /**
   * Upper bound of the object size, when known, so the writer can choose a part size that keeps any
   * object within S3's 10,000-part limit.
   */
  readonly expectedSize?: number;
  /**
   * The size the object will most likely have (a transform's output: about its input's), so a
   * writer that buffers parts can size its first buffer once instead of growing it by copies.
   */
  readonly likelySize?: number;
}

/**
 * A streamed upload. Nothing is visible at `uri` until `complete()` resolves; `abort()` removes every
 * trace (the multipart upload is aborted, a local temp file removed). Safe to call `abort()` twice or
 * after a failed `complete()`.
 */
export interface ObjectWriter {
  readonly uri: string;
  write(chunk: Buffer): Promise<void>;
  /** Several chunks in order, in one call (one writev, one wait for the upload): see writeChunks. */
  writeMany?(chunks: readonly Buffer[]): Promise<void>;
  /**
   * True when nothing refers to a write's chunks once its promise resolves, so the caller may reuse
   * their memory (the file writer: the bytes are in the file). Absent or false: the writer may still
   * hold them (the S3 writer queues them into its next part), and they must be left to it.
   */
  readonly releasesChunks?: boolean;
  complete(): Promise<void>;
  abort(): Promise<void>;
  /** Bytes accepted so far. */
  readonly bytesWritten: number;
}

export interface IncompleteUpload {
  readonly uri: string;
  readonly uploadId: string;
  readonly initiated?: Date;
}

/**
 * An object's bytes read into buffers the reader owns and reads into again: the chunks it yields
 * stay valid only until `release` covers them. What a file read allocates per chunk is garbage the
 * collector has to find (V8 counts fresh Buffer bytes toward its next full collection); a reader
 * that reuses its buffers allocates only as many as are in use at once.
 */
export interface PooledRead extends AsyncIterable<Buffer> {
  /**
   * Every chunk yielded so far that ends at or before `offset` (absolute, in the object) may be
   * overwritten by a later read: the caller promises that nothing refers to its bytes any more.
   */
  release(offset: number): void;
}

export interface Storage {
  /** Every object whose location starts with `prefixUri` (a raw string prefix), in key order. */
  list(prefixUri: string): AsyncIterable<StoredObject>;
  /** Size of the object, or undefined if there is none. */
  head(uri: string): Promise<StoredObject | undefined>;
  /** Streams an object, or a byte range of it. Rejects if the object does not exist. */
  read(uri: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable>;
  /**
   * `read` into reused buffers, where the backend can (file://); undefined where it cannot, and
   * the caller reads with `read`.
   */
  readPooled?(uri: string, range?: ByteRange, signal?: AbortSignal): Promise<PooledRead | undefined>;
  readAll(uri: string): Promise<Buffer>;
  put(uri: string, body: Buffer | string, opts?: WriterOptions): Promise<void>;
  /**
   * Writes the object only if nothing is at `uri`, atomically: of concurrent callers exactly one
   * creates it. True if this call did, false if an object was already there (left unchanged).
   * S3: PutObject with `If-None-Match: *`; file://: a hard link, which fails if the name exists.
   */
  putIfAbsent(uri: string, body: Buffer | string, opts?: WriterOptions): Promise<boolean>;
  createWriter(uri: string, opts?: WriterOptions): ObjectWriter;
  /** Server-side copy of whole objects concatenated in order into `target` (assemble step). */
  concat(sources: readonly string[], target: string, opts?: WriterOptions): Promise<void>;
  delete(uri: string): Promise<void>;
  /** Deletes many objects (missing ones are no error): S3 takes up to 1,000 in one DeleteObjects. */
  deleteMany(uris: readonly string[]): Promise<void>;
  /** Uploads begun under `prefixUri` and never completed or aborted. */
  listIncompleteUploads(prefixUri: string): AsyncIterable<IncompleteUpload>;
  abortIncompleteUpload(upload: IncompleteUpload): Promise<void>;
}
