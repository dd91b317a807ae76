import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { checkRange, concatStreamed, ObjectNotFoundError, unsatisfiableRange } from './common';
import type {
  ByteRange,
  IncompleteUpload,
  ObjectWriter,
  PooledRead,
  Storage,
  StoredObject,
  WriterOptions,
} from './storage';
import { PooledGetter } from './s3-pooled-read';
import { LocationError, parseLocation } from './uri';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** S3 quotas (Amazon S3 user guide, "Multipart upload limits"). */
export const S3_LIMITS = {
  maxParts: 10_000,
  /** Every part but the last must be at least this big, for uploads and for part copies alike. */
  minPartSize: 5 * MiB,
  maxPartSize: 5 * GiB,
  maxObjectSize: 5 * 1024 * GiB,
} as const;

/**
 * Our floor for upload parts. Larger than S3's 5 MiB so an object of unknown size can still reach
 * 10,000 × 8 MiB ≈ 78 GiB; writers of bigger objects pass `expectedSize`.
 */
export const MIN_UPLOAD_PART_SIZE = 8 * MiB;

/**
 * Attempts per request (first try included) in the SDK's `standard` retry mode: exponential backoff
 * with full jitter, capped at 20 s, drawing on a client-wide retry quota so a sick endpoint does not
 * turn into a retry storm. One more than the SDK's default of 3 because a batch job makes many
 * thousands of requests and S3 sheds load with 503 SlowDown when a prefix gets hot.
 */
export const DEFAULT_MAX_ATTEMPTS = 4;

/** Keys per DeleteObjects request (S3's limit). */
const DELETE_OBJECTS_LIMIT = 1000;

/** Tries of a conditional write that S3 answers with 409 ConditionalRequestConflict. */
const CONDITIONAL_WRITE_ATTEMPTS = 5;

/** How an S3 client reaches its endpoint. Field names are S3ClientConfig's, so it can be spread into one. */
export interface S3ConnectionOptions {
  readonly region?: string;
  /** An S3-compatible endpoint (`http://127.0.0.1:4568`); absent means AWS. */
  readonly endpoint?: string;
  /** Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need. */
  readonly forcePathStyle?: boolean;
  /**
   * `WHEN_REQUIRED` for servers that mishandle the SDK's default flexible checksums: s3rver stores
   * streamed bodies corrupted without it (REFERENCE.md). @default the SDK's WHEN_SUPPORTED
   */
  readonly requestChecksumCalculation?: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
  readonly responseChecksumValidation?: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
}

export interface S3StorageOptions extends S3ConnectionOptions {
  /** An existing client to share; the connection options above are then ignored. */
  readonly client?: S3Client;
  /** @default the SDK's default provider chain */
  readonly credentials?: S3ClientConfig['credentials'];
  /** @default DEFAULT_MAX_ATTEMPTS */
  readonly maxAttempts?: number;
  /** A request whose socket stays silent this long fails (and is retried). @default 60_000 */
  readonly socketTimeoutMs?: number;
  /**
   * Parts a writer uploads at once. A writer holds about (uploadQueueSize + 1) parts in memory.
   * @default 2
   */
  readonly uploadQueueSize?: number;
  /** Keys or uploads per listing page (S3's maximum, 1000, unless a test wants small pages). @default 1000 */
  readonly pageSize?: number;
}

/**
 * Connection options from the environment, for the CLI, the local runner and the Lambdas.
 * `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`) selects an S3-compatible server; such servers get
 * path-style addressing and checksums only where the API requires them.
 */
export function s3ClientConfigFromEnv(env: NodeJS.ProcessEnv = process.env): S3ConnectionOptions {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined;
  if (!endpoint) return region ? { region } : {};
  return {
    // A local server does not care about the region, but SigV4 signing needs one.
    region: region ?? 'us-east-1',
    endpoint,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
}

export function createS3Client(options: Omit<S3StorageOptions, 'client'> = {}): S3Client {
  const config: S3ClientConfig = {
    retryMode: 'standard',
    maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    requestHandler: { connectionTimeout: 5_000, socketTimeout: options.socketTimeoutMs ?? 60_000 },
  };
  if (options.region) config.region = options.region;
  if (options.endpoint) config.endpoint = options.endpoint;
  if (options.forcePathStyle !== undefined) config.forcePathStyle = options.forcePathStyle;
  if (options.credentials) config.credentials = options.credentials;
  if (options.requestChecksumCalculation)
    config.requestChecksumCalculation = options.requestChecksumCalculation;
  if (options.responseChecksumValidation)
    config.responseChecksumValidation = options.responseChecksumValidation;
  return new S3Client(config);
}

/**
 * The part size for an upload of at most `expectedSize` bytes: the smallest whole number of MiB
 * (at least MIN_UPLOAD_PART_SIZE) that fits the object in S3's 10,000 parts.
 */
export function partSizeFor(expectedSize?: number): number {
  if (expectedSize === undefined) return MIN_UPLOAD_PART_SIZE;
  if (!(expectedSize >= 0) || expectedSize > S3_LIMITS.maxObjectSize) {
    throw new RangeError(`expectedSize ${expectedSize} is outside 0..5 TiB, the size range of an S3 object`);
  }
  const needed = Math.ceil(expectedSize / S3_LIMITS.maxParts / MiB) * MiB;
  return Math.max(MIN_UPLOAD_PART_SIZE, needed);
}

interface S3Location {
  readonly bucket: string;
  readonly key: string;
}

function s3Location(uri: string): S3Location {
  const loc = parseLocation(uri);
  if (loc.scheme !== 's3') throw new LocationError(`S3Storage handles s3:// locations, not ${uri}`);
  return loc;
}

const s3Uri = (bucket: string, key: string) => `s3://${bucket}/${key}`;

function errorName(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? (err as { name?: string }).name : undefined;
}

function httpStatus(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null
    ? (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
    : undefined;
}

const isNoSuchUpload = (err: unknown) => errorName(err) === 'NoSuchUpload';
/** Environment variables that configure an HTTP proxy (see readPooled). */
const PROXY_VARIABLES = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'];

const isNotFound = (err: unknown) =>
  errorName(err) === 'NoSuchKey' || errorName(err) === 'NotFound' || httpStatus(err) === 404;
const isNotImplemented = (err: unknown) => errorName(err) === 'NotImplemented' || httpStatus(err) === 501;

function sseParams(opts: WriterOptions): { ServerSideEncryption?: 'aws:kms'; SSEKMSKeyId?: string } {
  return opts.kmsKeyId ? { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: opts.kmsKeyId } : {};
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results keep the input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>) {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** One UploadPartCopy: a byte range (inclusive, as CopySourceRange wants) of one source. */
interface CopyPart {
  readonly source: S3Location;
  readonly first: number;
  readonly last: number;
}

/**
 * The parts of a server-side concatenation, or undefined when S3's rules forbid one: every part but
 * the last must be at least 5 MiB. Empty sources contribute nothing and are dropped; sources above
 * 5 GiB (the part limit) are cut into equal ranges.
 */
export function planCopyParts(
  sources: readonly { readonly uri: string; readonly size: number }[],
): CopyPart[] | undefined {
  const nonEmpty = sources.filter((s) => s.size > 0);
  if (nonEmpty.length === 0) return undefined;
  if (nonEmpty.slice(0, -1).some((s) => s.size < S3_LIMITS.minPartSize)) return undefined;
  const parts: CopyPart[] = [];
  for (const { uri, size } of nonEmpty) {
    const pieces = Math.ceil(size / S3_LIMITS.maxPartSize);
    const step = Math.ceil(size / pieces);
    for (let first = 0; first < size; first += step) {
      parts.push({ source: s3Location(uri), first, last: Math.min(size, first + step) - 1 });
    }
  }
  return parts.length <= S3_LIMITS.maxParts ? parts : undefined;
}

/** `x-amz-copy-source` must be URL-encoded; `/` between key segments may stay. */
const copySource = ({ bucket, key }: S3Location) =>
  `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;

type ListedEntry = readonly [key: string, size: number];

const XML_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const xmlText = (s: string) =>
  s.includes('&')
    ? s.replace(/&(lt|gt|amp|quot|apos|#x?[0-9a-fA-F]+);/g, (_, e: string) =>
        e[0] === '#'
          ? String.fromCodePoint(e[1] === 'x' ? Number.parseInt(e.slice(2), 16) : Number(e.slice(1)))
          : XML_ENTITIES[e]!,
      )
    : s;

/**
 * A ListObjectsV2 page's keys and sizes, read with a small scanner, and the page without its
 * `<Contents>` for the SDK to parse the rest (truncation, continuation token). Why: the SDK's XML
 * deserializer took ~70 ms per 1,000-key page here, most of a million-key plan's minute; the scanner
 * takes a few. Keys come back URL-encoded when the answer says `<EncodingType>url</EncodingType>`.
 */
export function scanListPage(xml: string): { entries: ListedEntry[]; rest: string } {
  const urlEncoded = /<EncodingType>url<\/EncodingType>/.test(xml);
  const entries: ListedEntry[] = [];
  const contents = /<Contents>([\s\S]*?)<\/Contents>/g;
  for (let m = contents.exec(xml); m; m = contents.exec(xml)) {
    const body = m[1]!;
    const key = /<Key>([^<]*)<\/Key>/.exec(body)?.[1];
    if (key === undefined) continue;
    const text = xmlText(key);
    const size = Number(/<Size>(\d+)<\/Size>/.exec(body)?.[1] ?? 0);
    entries.push([urlEncoded ? decodeURIComponent(text.replace(/\+/g, ' ')) : text, size]);
  }
  return { entries, rest: xml.replace(contents, '') };
}

async function streamToBuffer(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Object storage over the S3 API (AWS, or any S3-compatible endpoint), AWS SDK v3. */
export class S3Storage implements Storage {
  readonly client: S3Client;
  readonly #ownsClient: boolean;
  readonly #queueSize: number;
  readonly #pageSize: number;
  /** Set once the endpoint answered NotImplemented to UploadPartCopy (s3rver does), so concat stops trying. */
  #partCopyUnsupported = false;
  readonly #pooledGets: PooledGetter;
  /** Part buffers the writers share (see PartBuffers). */
  readonly #partBuffers: PartBuffers;

  constructor(options: S3StorageOptions = {}) {
    this.client = options.client ?? createS3Client(options);
    this.#ownsClient = !options.client;
    this.#pooledGets = new PooledGetter(options.socketTimeoutMs ?? 60_000);
    this.#queueSize = options.uploadQueueSize ?? 2;
    this.#partBuffers = new PartBuffers(2 * (this.#queueSize + 1));
    this.#pageSize = options.pageSize ?? 1000;
  }

  /** Releases the client's sockets if this storage created it. */
  destroy(): void {
    this.#pooledGets.close();
    if (this.#ownsClient) this.client.destroy();
  }

  async *list(prefixUri: string): AsyncIterable<StoredObject> {
    const { bucket, key } = s3Location(prefixUri);
    let token: string | undefined;
    do {
      const command = new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: key,
        MaxKeys: this.#pageSize,
        ...(token ? { ContinuationToken: token } : {}),
      });
      let entries: ListedEntry[] = [];
      command.middlewareStack.add(
        (next) => async (args) => {
          const out = await next(args);
          const response = out.response as { statusCode?: number; body?: unknown };
          if (response.statusCode === 200 && response.body instanceof Readable) {
            const scanned = scanListPage((await streamToBuffer(response.body)).toString('utf8'));
            entries = scanned.entries;
            response.body = Readable.from([Buffer.from(scanned.rest)]);
          }
          return out;
        },
        // Inside the SDK's deserializer (same step, lower priority): it sees the raw answer first.
        { step: 'deserialize', priority: 'low', name: 'listPageScanner' },
      );
      const page = await this.client.send(command);
      for (const [k, size] of entries) yield { uri: s3Uri(bucket, k), size };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async head(uri: string): Promise<StoredObject | undefined> {
    const { bucket, key } = s3Location(uri);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return {
        uri,
        size: out.ContentLength ?? 0,
        ...(out.LastModified ? { lastModified: out.LastModified } : {}),
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async read(uri: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const { bucket, key } = s3Location(uri);
    if (range) {
      checkRange(uri, range);
      if (range.start === range.end) {
        // HTTP cannot express an empty range; still honour "rejects if the object does not exist".
        if (!(await this.head(uri))) throw new ObjectNotFoundError(uri);
        return Readable.from([]);
      }
    }
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          ...(range && { Range: `bytes=${range.start}-${range.end - 1}` }),
        }),
        { abortSignal: signal },
      );
      const body = out.Body as Readable;
      if (signal) {
        const onAbort = () => body.destroy(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
        body.once('close', () => signal.removeEventListener('abort', onAbort));
      }
      return body;
    } catch (err) {
      throw await this.#readError(uri, range, err);
    }
  }

  /**
   * `read`, into reused buffers (see s3-pooled-read.ts for why): the body arrives in 256 KiB blocks
   * that are read into again once the caller releases them, one block read ahead.
   */
  async readPooled(uri: string, range?: ByteRange, signal?: AbortSignal): Promise<PooledRead | undefined> {
    // The pooled transfer opens its own sockets and knows no proxy: with one configured, the
    // caller reads through the SDK (`read`).
    if (PROXY_VARIABLES.some((name) => process.env[name])) return undefined;
    const { bucket, key } = s3Location(uri);
    if (range) {
      checkRange(uri, range);
      if (range.start === range.end) return undefined; // `read` answers that one
    }
    try {
      const body = await this.#pooledGets.get(
        this.client,
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          ...(range && { Range: `bytes=${range.start}-${range.end - 1}` }),
        }),
        signal,
      );
      body.base = range?.start ?? 0;
      return body;
    } catch (err) {
      throw await this.#readError(uri, range, err);
    }
  }

  /** A GetObject failure in this package's terms: ObjectNotFoundError, an unsatisfiable range. */
  async #readError(uri: string, range: ByteRange | undefined, err: unknown): Promise<unknown> {
    if (isNotFound(err)) return new ObjectNotFoundError(uri, { cause: err });
    if (range && (errorName(err) === 'InvalidRange' || httpStatus(err) === 416)) {
      const size = (await this.head(uri))?.size ?? 0;
      return unsatisfiableRange(uri, range, size);
    }
    return err;
  }

  async readAll(uri: string): Promise<Buffer> {
    const { bucket, key } = s3Location(uri);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const bytes = await out.Body!.transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      if (isNotFound(err)) throw new ObjectNotFoundError(uri, { cause: err });
      throw err;
    }
  }

  async put(uri: string, body: Buffer | string, opts: WriterOptions = {}): Promise<void> {
    const { bucket, key } = s3Location(uri);
    await this.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentLength: Buffer.byteLength(body),
        ContentType: opts.contentType,
        ...sseParams(opts),
      }),
    );
  }

  async putIfAbsent(uri: string, body: Buffer | string, opts: WriterOptions = {}): Promise<boolean> {
    const { bucket, key } = s3Location(uri);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: body,
            ContentLength: Buffer.byteLength(body),
            ContentType: opts.contentType,
            IfNoneMatch: '*',
            ...sseParams(opts),
          }),
        );
        return true;
      } catch (err) {
        if (errorName(err) === 'PreconditionFailed' || httpStatus(err) === 412) return false;
        // S3 answers 409 ConditionalRequestConflict while another conditional write of the key is
        // in flight, and asks the caller to retry (S3 user guide, "Conditional writes").
        const conflict = errorName(err) === 'ConditionalRequestConflict' || httpStatus(err) === 409;
        if (!conflict || attempt >= CONDITIONAL_WRITE_ATTEMPTS) throw err;
        await new Promise((resolve) => setTimeout(resolve, 50 * attempt * Math.random()));
      }
    }
  }

  createWriter(uri: string, opts: WriterOptions = {}): ObjectWriter {
    return new S3ObjectWriter(this.client, uri, opts, this.#queueSize, this.#partBuffers);
  }

  async concat(sources: readonly string[], target: string, opts: WriterOptions = {}): Promise<void> {
    const sized = await mapLimit(sources, 8, async (uri) => {
      const found = await this.head(uri);
      if (!found) throw new ObjectNotFoundError(uri);
      return found;
    });
    const parts = this.#partCopyUnsupported ? undefined : planCopyParts(sized);
    if (parts) {
      try {
        await this.#concatByPartCopy(parts, s3Location(target), opts);
        return;
      } catch (err) {
        if (!isNotImplemented(err)) throw err;
        this.#partCopyUnsupported = true;
      }
    }
    const expectedSize = sized.reduce((sum, s) => sum + s.size, 0);
    await concatStreamed(this, sources, target, { ...opts, expectedSize });
  }

  async #concatByPartCopy(
    parts: readonly CopyPart[],
    target: S3Location,
    opts: WriterOptions,
  ): Promise<void> {
    const { bucket, key } = target;
    const created = await this.client.send(
      new CreateMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        ContentType: opts.contentType,
        ...sseParams(opts),
      }),
    );
    const uploadId = created.UploadId!;
    try {
      const etags = await mapLimit(parts, 4, async (part, i) => {
        const out = await this.client.send(
          new UploadPartCopyCommand({
            Bucket: bucket,
            Key: key,
            UploadId: uploadId,
            PartNumber: i + 1,
            CopySource: copySource(part.source),
            CopySourceRange: `bytes=${part.first}-${part.last}`,
          }),
        );
        return out.CopyPartResult?.ETag;
      });
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        }),
      );
    } catch (err) {
      await this.abortIncompleteUpload({ uri: s3Uri(bucket, key), uploadId }).catch(() => {
        // The copy error is the one worth reporting; Cleanup aborts whatever is left under the prefix.
      });
      throw err;
    }
  }

  async delete(uri: string): Promise<void> {
    const { bucket, key } = s3Location(uri);
    await this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }

  /** DeleteObjects, 1,000 keys a request (its limit); a key S3 could not delete fails the call. */
  async deleteMany(uris: readonly string[]): Promise<void> {
    const byBucket = new Map<string, string[]>();
    for (const uri of uris) {
      const { bucket, key } = s3Location(uri);
      byBucket.set(bucket, [...(byBucket.get(bucket) ?? []), key]);
    }
    for (const [bucket, keys] of byBucket) {
      for (let i = 0; i < keys.length; i += DELETE_OBJECTS_LIMIT) {
        const out = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: bucket,
            Delete: { Objects: keys.slice(i, i + DELETE_OBJECTS_LIMIT).map((Key) => ({ Key })), Quiet: true },
          }),
        );
        const failed = out.Errors ?? [];
        if (failed.length > 0) {
          const first = failed[0]!;
          throw new Error(
            `could not delete ${failed.length} object(s) from s3://${bucket}/, first ${first.Key}: ${first.Code} ${first.Message ?? ''}`.trim(),
          );
        }
      }
    }
  }

  async *listIncompleteUploads(prefixUri: string): AsyncIterable<IncompleteUpload> {
    const { bucket, key } = s3Location(prefixUri);
    // The SDK has no paginator for ListMultipartUploads: its cursor is a (key, upload id) pair.
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({
          Bucket: bucket,
          Prefix: key,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
          MaxUploads: this.#pageSize,
        }),
      );
      for (const upload of page.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined) continue;
        yield { uri: s3Uri(bucket, upload.Key), uploadId: upload.UploadId, initiated: upload.Initiated };
      }
      if (!page.IsTruncated) return;
      if (page.NextKeyMarker === keyMarker && page.NextUploadIdMarker === uploadIdMarker) {
        throw new Error(`ListMultipartUploads for ${prefixUri} returned a truncated page without advancing`);
      }
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async abortIncompleteUpload(upload: IncompleteUpload): Promise<void> {
    const { bucket, key } = s3Location(upload.uri);
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: upload.uploadId }),
      );
    } catch (err) {
      // Already aborted or completed: cleanup is allowed to run twice.
      if (!isNoSuchUpload(err)) throw err;
    }
  }
}

type WriterState = 'open' | 'completing' | 'completed' | 'aborting' | 'aborted' | 'failed';

/** S3's part checksum header value: the CRC32 of the bytes, big-endian, in base64. */
function crc32Base64(bytes: Buffer): string {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(crc32(bytes));
  return out.toString('base64');
}

/**
 * Marks a request's body `UNSIGNED-PAYLOAD` for SigV4, so the signer does not hash it (see
 * S3ObjectWriter), when nothing between us and the server can alter the bytes unseen: over https
 * (TLS protects them) or to a loopback address. Over plain http to another host the payload is
 * signed as usual: a CRC32 is no defence against someone who changes the bytes on the way. Added at
 * the build step, before finalizeRequest where the signer reads it.
 */
function unsignedPayload<C extends PutObjectCommand | UploadPartCommand>(command: C): C {
  (command.middlewareStack as UploadPartCommand['middlewareStack']).add(
    (next) => (args) => {
      const request = args.request as {
        protocol?: string;
        hostname?: string;
        headers: Record<string, string>;
      };
      if (request.protocol === 'https:' || isLoopbackHost(request.hostname)) {
        request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      }
      return next(args);
    },
    { step: 'build', name: 'unsignedPayload' },
  );
  return command;
}

/** 127.0.0.0/8, ::1 or localhost: a request that never leaves the machine. */
export function isLoopbackHost(hostname: string | undefined): boolean {
  if (!hostname) return false;
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Whole-part buffers shared by a storage's writers. A partition writes object after object: with
 * buffers of its own, each writer left up to three 8 MiB buffers to the garbage collector, and V8
 * counts such external memory toward its next collection (in the slow-model bench, 16 objects of
 * 6 MB on S3, garbage collection was 12 % of the sidecar's CPU against 2 % on file://). At most
 * `maxFree` buffers of a size wait for reuse; more are left to the collector.
 */
class PartBuffers {
  readonly #free = new Map<number, Buffer[]>();
  constructor(readonly maxFree: number) {}
  take(size: number): Buffer {
    return this.#free.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);
  }
  give(buffer: Buffer): void {
    const list = this.#free.get(buffer.length) ?? [];
    this.#free.set(buffer.length, list);
    if (list.length < this.maxFree) list.push(buffer);
  }
}

/** The smallest buffer a writer starts with; it doubles up to the part size as bytes arrive. */
const FIRST_BUFFER = 64 * 1024;

/**
 * A multipart upload written by hand, into reused part-sized buffers.
 *
 * Why not lib-storage's `Upload`: fed a stream, it joins what arrives into each part with
 * `Buffer.concat`, and our writes had to join each output into one Buffer before that (a stream
 * write per piece cost more). Two copies of every output byte and 8 MiB of fresh garbage per part:
 * in the benchmark's S3 job `Buffer.concat` was 12 % of the sidecar's CPU and garbage collection
 * 17 % (docs/PERFORMANCE.md). Here a write copies its pieces once, straight into the part being
 * filled, and a part's buffer is filled again once S3 has it: at most `queueSize + 1` part buffers
 * per writer, allocated as needed and never thrown away while the writer lives.
 *
 * Why UNSIGNED-PAYLOAD with a CRC32: the SDK signs a Buffer body's SHA-256 (5 % of the CPU over
 * plain http, and over https too) and, with its default checksums, adds a CRC32. Every part here
 * carries `x-amz-checksum-crc32`, from Node's native zlib.crc32 (about twice SHA-256's speed), which
 * S3 verifies (BadDigest otherwise) and records for CompleteMultipartUpload: the part is
 * integrity-checked end to end without hashing it twice. The upload is created with
 * ChecksumAlgorithm CRC32, as lib-storage does under the SDK's default checksum setting.
 *
 * Semantics kept from the `Upload` it replaces: nothing is visible before `complete()`; an object
 * of one part or less is a single PutObject; a part failing (after the SDK's retries) fails the
 * writer; `abort()` and a failed `complete()` wait for every part in flight before
 * AbortMultipartUpload, so no part lands after it and keeps storage.
 */
class S3ObjectWriter implements ObjectWriter {
  readonly uri: string;
  /** A write copies its chunks into the part being filled before it resolves. */
  readonly releasesChunks = true;
  #bytes = 0;
  #state: WriterState = 'open';
  readonly #client: S3Client;
  readonly #location: S3Location;
  readonly #opts: WriterOptions;
  readonly #partSize: number;
  /** Parts in flight at most; part buffers are one more (the one being filled). */
  readonly #queueSize: number;
  #buffers = 0;
  readonly #free: Buffer[] = [];
  /** The part being filled, and how much of it is. */
  #current: Buffer | undefined;
  #filled = 0;
  #nextPart = 1;
  #uploadId: Promise<string> | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #parts: Array<{ PartNumber: number; ETag: string; ChecksumCRC32?: string }> = [];
  /** The first failure of a part or of creating the upload: the writer is done for. */
  #failure: { error: unknown } | undefined;
  /** A write waiting for a part buffer to come back. */
  #wake: (() => void) | undefined;
  /** The write under way: writes are copied in call order. */
  #pending: Promise<void> = Promise.resolve();
  #completion: Promise<void> | undefined;
  #abortion: Promise<void> | undefined;

  readonly #shared: PartBuffers;

  constructor(client: S3Client, uri: string, opts: WriterOptions, queueSize: number, shared: PartBuffers) {
    this.uri = uri;
    this.#client = client;
    this.#location = s3Location(uri);
    this.#opts = opts;
    this.#partSize = partSizeFor(opts.expectedSize);
    this.#queueSize = Math.max(1, queueSize);
    this.#shared = shared;
  }

  get bytesWritten(): number {
    return this.#bytes;
  }

  write(chunk: Buffer): Promise<void> {
    return this.writeMany([chunk]);
  }

  /** Copies the chunks, in order, into the part being filled; waits only for a free part buffer. */
  writeMany(chunks: readonly Buffer[]): Promise<void> {
    if (this.#state !== 'open') {
      return Promise.reject(new Error(`cannot write to ${this.uri}: the writer is ${this.#state}`));
    }
    const op = this.#pending.then(() => this.#copy(chunks));
    this.#pending = op.catch(() => {});
    return op;
  }

  async #copy(chunks: readonly Buffer[]): Promise<void> {
    for (const chunk of chunks) {
      let at = 0;
      while (at < chunk.length) {
        if (this.#failure || this.#state === 'aborting' || this.#state === 'aborted')
          throw this.#closedError();
        const part = await this.#room(chunk.length - at);
        const n = chunk.copy(part, this.#filled, at);
        this.#filled += n;
        this.#bytes += n;
        at += n;
      }
    }
  }

  /**
   * A part buffer with room for at least one more byte (as many as `wanted` if it can grow that
   * far). A full part is sent only when more bytes come: the last part is sent by complete(), and
   * an object of one part is a PutObject.
   */
  async #room(wanted: number): Promise<Buffer> {
    let part = this.#current;
    if (part && this.#filled === this.#partSize) {
      // At most queueSize parts in flight: the producer waits here for S3.
      while (this.#inFlight.size >= this.#queueSize) await this.#partSettled();
      this.#send(part, this.#filled);
      part = this.#current = undefined;
      this.#filled = 0;
    }
    if (!part) {
      part = this.#current = await this.#takeBuffer(wanted);
    } else if (this.#filled === part.length) {
      // The first buffer grows by doubling, so a small object never holds a whole part. Sized from
      // `likelySize` it rarely grows: every growth copies what it holds (a 6 MB output grown from
      // 64 KiB made 8 MiB of garbage and 12 % of the sidecar's copying in the slow-model bench).
      const size = Math.min(this.#partSize, Math.max(part.length * 2, this.#filled + wanted));
      const grown = size === this.#partSize ? this.#shared.take(size) : Buffer.allocUnsafeSlow(size);
      part.copy(grown, 0, 0, this.#filled);
      part = this.#current = grown;
    }
    return part;
  }

  async #takeBuffer(wanted: number): Promise<Buffer> {
    for (;;) {
      const free = this.#free.pop();
      if (free) return free;
      if (this.#buffers < this.#queueSize + 1) {
        this.#buffers++;
        // Only the first buffer starts small (and grows): once a part is sent, whole parts follow.
        // An object likely to fill half a part or more takes a whole (shared) one at once.
        const first = Math.max(FIRST_BUFFER, wanted, this.#opts.likelySize ?? 0);
        return this.#nextPart > 1 || first >= this.#partSize / 2
          ? this.#shared.take(this.#partSize)
          : Buffer.allocUnsafeSlow(first);
      }
      await this.#partSettled();
    }
  }

  /** Waits for a part in flight to settle; throws if the writer failed or is being aborted. */
  async #partSettled(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
    });
    if (this.#failure || this.#state === 'aborting' || this.#state === 'aborted') throw this.#closedError();
  }

  #wakeWriter(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #createUpload(): Promise<string> {
    this.#uploadId ??= this.#client
      .send(
        new CreateMultipartUploadCommand({
          Bucket: this.#location.bucket,
          Key: this.#location.key,
          ContentType: this.#opts.contentType,
          ChecksumAlgorithm: 'CRC32',
          ...sseParams(this.#opts),
        }),
      )
      .then((out) => {
        if (!out.UploadId) throw new Error('CreateMultipartUpload answered without an UploadId');
        return out.UploadId;
      });
    return this.#uploadId;
  }

  /** Uploads `part[0, length)` as the next part; its buffer comes back to #free once S3 has it. */
  #send(part: Buffer, length: number): void {
    const partNumber = this.#nextPart++;
    const upload = (async () => {
      if (partNumber > S3_LIMITS.maxParts) {
        throw new Error(`more than ${S3_LIMITS.maxParts} parts of ${this.#partSize} bytes`);
      }
      const uploadId = await this.#createUpload();
      // Another part failed, or abort() was called: the upload is being aborted.
      if (this.#failure || this.#state === 'aborting' || this.#state === 'aborted') return;
      const body = part.subarray(0, length);
      const checksum = crc32Base64(body);
      const out = await this.#client.send(
        unsignedPayload(
          new UploadPartCommand({
            Bucket: this.#location.bucket,
            Key: this.#location.key,
            UploadId: uploadId,
            PartNumber: partNumber,
            Body: body,
            ContentLength: length,
            ChecksumCRC32: checksum,
          }),
        ),
      );
      if (!out.ETag) throw new Error(`UploadPart ${partNumber} answered without an ETag`);
      this.#parts.push({
        PartNumber: partNumber,
        ETag: out.ETag,
        ChecksumCRC32: out.ChecksumCRC32 ?? checksum,
      });
    })()
      .catch((error) => {
        this.#failure ??= { error };
      })
      .finally(() => {
        this.#inFlight.delete(upload);
        this.#free.push(part);
        this.#wakeWriter();
      });
    this.#inFlight.add(upload);
  }

  /** Why a write cannot go on: our own abort, or the upload's failure. */
  #closedError(): Error {
    if (this.#state === 'aborting' || this.#state === 'aborted')
      return new Error(`upload to ${this.uri} aborted`);
    return this.#wrap(this.#failure?.error);
  }

  complete(): Promise<void> {
    if (this.#completion) return this.#completion;
    if (this.#state !== 'open') {
      return Promise.reject(new Error(`cannot complete ${this.uri}: the writer is ${this.#state}`));
    }
    this.#state = 'completing';
    this.#completion = this.#finish();
    return this.#completion;
  }

  async #finish(): Promise<void> {
    try {
      await this.#pending;
      if (!this.#failure && this.#nextPart === 1) {
        await this.#putWhole();
      } else {
        if (this.#current && this.#filled > 0 && !this.#failure) this.#send(this.#current, this.#filled);
        this.#current = undefined;
        await this.#drain();
        if (this.#failure) throw this.#failure.error;
        const uploadId = await this.#createUpload();
        this.#parts.sort((a, b) => a.PartNumber - b.PartNumber);
        await this.#client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.#location.bucket,
            Key: this.#location.key,
            UploadId: uploadId,
            MultipartUpload: { Parts: this.#parts },
          }),
        );
      }
      this.#state = 'completed';
    } catch (cause) {
      this.#state = 'failed';
      const error = this.#wrap(cause);
      await this.#abortUpload().catch((cleanupError) => {
        error.message += `; aborting its multipart upload failed too (${(cleanupError as Error).message})`;
      });
      throw error;
    } finally {
      this.#release();
    }
  }

  /** An object that fits in one part: one PutObject, as lib-storage sends. */
  async #putWhole(): Promise<void> {
    const body = this.#current ? this.#current.subarray(0, this.#filled) : Buffer.alloc(0);
    await this.#client.send(
      unsignedPayload(
        new PutObjectCommand({
          Bucket: this.#location.bucket,
          Key: this.#location.key,
          Body: body,
          ContentLength: body.length,
          ContentType: this.#opts.contentType,
          ChecksumCRC32: crc32Base64(body),
          ...sseParams(this.#opts),
        }),
      ),
    );
  }

  async abort(): Promise<void> {
    if (this.#completion) {
      // complete() owns the teardown; it aborts the upload itself if it fails.
      await this.#completion.catch(() => {});
      return;
    }
    // A second abort() waits for the first one's teardown.
    this.#abortion ??= (async () => {
      this.#state = 'aborting';
      this.#wakeWriter();
      await this.#pending;
      await this.#drain();
      await this.#abortUpload();
      this.#release();
      this.#state = 'aborted';
    })().catch((err) => {
      this.#abortion = undefined; // the caller may try again
      throw err;
    });
    return this.#abortion;
  }

  /** Waits until no part is in flight (a part that fails sets #failure and settles). */
  async #drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
  }

  /**
   * AbortMultipartUpload once nothing is in flight; NoSuchUpload means it is gone already (S3's
   * guidance: abort again if unsure).
   */
  async #abortUpload(): Promise<void> {
    const uploadId = await this.#uploadId?.catch(() => undefined);
    if (!uploadId) return;
    try {
      await this.#client.send(
        new AbortMultipartUploadCommand({
          Bucket: this.#location.bucket,
          Key: this.#location.key,
          UploadId: uploadId,
        }),
      );
    } catch (err) {
      if (!isNoSuchUpload(err)) throw err;
    }
  }

  /**
   * The writer is finished: its whole-part buffers go back to the storage's, unless a part may
   * still be in flight (a part settling later puts its buffer in #free, which nobody reads again).
   */
  #release(): void {
    if (this.#inFlight.size === 0) {
      for (const b of this.#free) if (b.length === this.#partSize) this.#shared.give(b);
      if (this.#current?.length === this.#partSize) this.#shared.give(this.#current);
    }
    this.#current = undefined;
    this.#free.length = 0;
  }

  #wrap(cause: unknown): Error {
    const message = cause instanceof Error ? cause.message : String(cause);
    return new Error(`upload to ${this.uri} failed: ${message}`, { cause });
  }
}
