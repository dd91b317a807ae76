/**
 * An in-memory S3 server on loopback, speaking S3's REST/XML protocol over node:http, for tests and
 * measurements that s3rver (s3-server.ts) cannot serve: it is fast, answers conditional writes, and
 * has the multipart calls s3rver lacks.
 *
 * Scope (path-style requests only: clients need `forcePathStyle: true`):
 *   buckets   ListBuckets, CreateBucket, HeadBucket, DeleteBucket
 *   objects   PutObject (If-None-Match: * → 412 PreconditionFailed when the key exists; If-Match),
 *             GetObject (Range: `a-b`, `a-`, `-n`; If-Match / If-None-Match), HeadObject,
 *             DeleteObject, DeleteObjects, CopyObject (metadata COPY or REPLACE),
 *             ListObjectsV2 (prefix, delimiter, continuation-token, max-keys, start-after,
 *             encoding-type=url), ListObjects (v1: marker)
 *   multipart CreateMultipartUpload, UploadPart, UploadPartCopy (with x-amz-copy-source-range),
 *             CompleteMultipartUpload (If-None-Match: * as well; parts in order, ETags checked,
 *             5 MiB minimum for every part but the last), AbortMultipartUpload,
 *             ListMultipartUploads (prefix, key-marker, upload-id-marker, max-uploads), ListParts
 *   bodies    plain, or `aws-chunked` (the SDK's default streaming with trailing checksums), so
 *             clients work with the SDK's default checksum settings; an x-amz-checksum-crc32
 *             header is verified (400 BadDigest), trailing checksums are not
 *   faults    a per-request rule, as in s3-server.ts (500/503 answers or stalls)
 * Not served: authentication (any credentials pass; signatures are not checked), versioning, ACLs,
 * tagging, lifecycle rules, encryption (SSE headers are accepted and ignored), virtual-host style.
 *
 * Why it is fast where it matters:
 * - Bodies are kept as the Buffers the socket delivered and streamed back as slices of them; a copy
 *   (CopyObject, UploadPartCopy, Complete) shares the source's Buffers, it does not copy bytes.
 * - Keys are kept sorted (UTF-8 byte order, as S3 lists) in one array; a listing page is a binary
 *   search and a walk of at most max-keys entries, so 1,000,000 keys list at the speed of the XML.
 *   New keys wait in a set and are merged at the next listing; deleted keys are skipped and
 *   compacted away, so neither a put nor a delete moves the array.
 * - XML is written with template strings and read (DeleteObjects, CompleteMultipartUpload) with two
 *   small regular expressions; there is no XML library on the request path.
 * Requests are atomic: a conditional write is decided when its body has fully arrived, in one turn
 * of the event loop, so of two racing writers exactly one wins (the other gets 412, where S3 may
 * also answer 409 ConditionalRequestConflict).
 */
import { createHash, randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { DEFAULT_MAX_ATTEMPTS, S3Storage } from '../../src/storage/s3';
import type { FaultControl, FaultRequest, FaultRule, S3Operation } from './s3-server';

export type { Fault, FaultRequest, FaultRule, S3Operation } from './s3-server';
export { faultTimes } from './s3-server';

const MiB = 1024 * 1024;
const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';

/** A body given to seed(): bytes, text, or `{ size }` for that many zero bytes held by reference. */
export type SeedBody = Buffer | string | { readonly size: number };

export interface MemoryS3Options {
  /** Buckets that exist from the start. @default ['test-bucket'] */
  readonly buckets?: readonly string[];
  /** Every part of a multipart upload but the last must be at least this big (S3: 5 MiB). */
  readonly minPartSize?: number;
  /** @default 0 (any free port) */
  readonly port?: number;
}

export interface MemoryS3 {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  /** Path style; the SDK's default checksum settings (the server decodes aws-chunked bodies). */
  readonly client: S3Client;
  readonly clientConfig: S3ClientConfig;
  readonly storage: S3Storage;
  readonly faults: FaultControl;
  /** Requests served, by operation, since start (or the last `requests.clear()`). */
  readonly requests: Map<S3Operation, number>;
  createBucket(name: string): void;
  /** Puts objects straight into the store (no HTTP): a million keys in about a second. */
  seed(bucket: string, objects: Iterable<readonly [key: string, body: SeedBody]>): void;
  /** Keys stored in `bucket`. */
  objectCount(bucket: string): number;
  /** Multipart uploads begun and not completed or aborted in `bucket` (under `prefix`). */
  incompleteUploads(bucket: string, prefix?: string): number;
  /** The object's bytes, or undefined: for assertions that look behind the API. */
  objectBytes(bucket: string, key: string): Buffer | undefined;
  stop(): Promise<void>;
}

export async function startMemoryS3(options: MemoryS3Options = {}): Promise<MemoryS3> {
  const store = new Store(options.minPartSize ?? 5 * MiB);
  for (const name of options.buckets ?? ['test-bucket']) store.createBucket(name);
  const server = new MemoryS3Server(store);
  await server.listen(options.port ?? 0);
  const endpoint = `http://127.0.0.1:${server.port}`;
  const clientConfig: S3ClientConfig = {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'memory', secretAccessKey: 'memory' },
    forcePathStyle: true,
    retryMode: 'standard',
    maxAttempts: DEFAULT_MAX_ATTEMPTS,
  };
  const client = new S3Client(clientConfig);
  let stopped = false;
  return {
    endpoint,
    client,
    clientConfig,
    storage: new S3Storage({ client }),
    faults: server.faults,
    requests: server.requests,
    createBucket: (name) => store.createBucket(name),
    seed(bucket, objects) {
      const b = store.bucket(bucket);
      if (!b) throw new Error(`no bucket ${bucket}`);
      const now = new Date();
      for (const [key, body] of objects) b.put(key, storedFrom(body, now));
    },
    objectCount: (bucket) => store.bucket(bucket)?.size ?? 0,
    incompleteUploads: (bucket, prefix = '') =>
      [...store.uploads.values()].filter((u) => u.bucket === bucket && u.key.startsWith(prefix)).length,
    objectBytes(bucket, key) {
      const o = store.bucket(bucket)?.get(key);
      return o ? Buffer.concat(o.chunks) : undefined;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      client.destroy();
      await server.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The store

interface StoredObject {
  readonly chunks: readonly Buffer[];
  readonly size: number;
  /** Quoted, as S3 sends it. */
  readonly etag: string;
  readonly lastModified: Date;
  readonly contentType: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;
}

interface Part {
  readonly chunks: readonly Buffer[];
  readonly size: number;
  readonly etag: string;
  readonly md5: Buffer;
  readonly lastModified: Date;
}

interface Upload {
  readonly bucket: string;
  readonly key: string;
  readonly uploadId: string;
  readonly initiated: Date;
  readonly contentType: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;
  readonly parts: Map<number, Part>;
}

const ZEROS = Buffer.alloc(MiB);
const EMPTY_ETAG = `"${createHash('md5').digest('hex')}"`;

function storedFrom(body: SeedBody, now: Date): StoredObject {
  if (Buffer.isBuffer(body) || typeof body === 'string') {
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const etag = `"${createHash('md5').update(bytes).digest('hex')}"`;
    return {
      chunks: [bytes],
      size: bytes.length,
      etag,
      lastModified: now,
      contentType: undefined,
      metadata: {},
    };
  }
  // One shared record per size and time: a million seeded keys cost a Map entry each, little more.
  const cacheKey = `${body.size}@${now.getTime()}`;
  let stored = zeroObjects.get(cacheKey);
  if (!stored) {
    const chunks: Buffer[] = [];
    for (let left = body.size; left > 0; left -= ZEROS.length) {
      chunks.push(ZEROS.subarray(0, Math.min(left, ZEROS.length)));
    }
    // A made-up ETag for zero-filled seeds: hashing a million of them would cost more than listing.
    const etag = body.size === 0 ? EMPTY_ETAG : `"zeros-${body.size}"`;
    stored = { chunks, size: body.size, etag, lastModified: now, contentType: undefined, metadata: {} };
    if (zeroObjects.size > 10_000) zeroObjects.clear();
    zeroObjects.set(cacheKey, stored);
  }
  return stored;
}
const zeroObjects = new Map<string, StoredObject>();

/**
 * UTF-8 byte order, which S3 lists in. JavaScript compares UTF-16 code units, which agrees except
 * when a surrogate (U+D800–DFFF, the astral planes) meets U+E000–FFFF: in UTF-8 the astral one is
 * bigger.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys && (x >= 0xe000 || y >= 0xe000)) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** A bucket's objects: a Map for lookups beside a sorted key array for listings (see file header). */
class Bucket {
  readonly objects = new Map<string, StoredObject>();
  readonly created = new Date();
  #sorted: string[] = [];
  /** Keys added since the last listing, not yet in #sorted (an array: a Set costs twice as much). */
  #pending: string[] = [];
  /** Keys in #sorted (or #pending) whose object is gone. */
  #removed = new Set<string>();

  get size(): number {
    return this.objects.size;
  }

  get(key: string): StoredObject | undefined {
    return this.objects.get(key);
  }

  put(key: string, object: StoredObject): void {
    if (!this.objects.has(key)) {
      // A removed key is still in #sorted or #pending: it only needs to stop being removed.
      if (!this.#removed.delete(key)) this.#pending.push(key);
    }
    this.objects.set(key, object);
  }

  delete(key: string): boolean {
    if (!this.objects.delete(key)) return false;
    this.#removed.add(key);
    return true;
  }

  /** The sorted keys, brought up to date. Entries may still name deleted keys: check `objects`. */
  keys(): string[] {
    if (this.#pending.length > 0) {
      const added = this.#pending.sort(compareKeys);
      this.#pending = [];
      this.#sorted = merge(this.#sorted, added);
    }
    if (this.#removed.size > 0 && this.#removed.size * 4 > this.#sorted.length) {
      this.#sorted = this.#sorted.filter((k) => !this.#removed.has(k));
      this.#removed.clear();
    }
    return this.#sorted;
  }
}

function merge(a: string[], b: string[]): string[] {
  if (a.length === 0) return b;
  const out = new Array<string>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = compareKeys(a[i]!, b[j]!) <= 0 ? a[i++]! : b[j++]!;
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}

/** First index whose key is > `after` (or ≥ when `inclusive`). */
function lowerBound(keys: readonly string[], after: string, inclusive: boolean): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareKeys(keys[mid]!, after);
    if (c < 0 || (c === 0 && !inclusive)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index past every key that starts with `prefix` (and past every key below it). */
function pastPrefix(keys: readonly string[], prefix: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const k = keys[mid]!;
    if (k.startsWith(prefix) || compareKeys(k, prefix) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

class Store {
  readonly buckets = new Map<string, Bucket>();
  readonly uploads = new Map<string, Upload>();
  constructor(readonly minPartSize: number) {}

  createBucket(name: string): boolean {
    if (this.buckets.has(name)) return false;
    this.buckets.set(name, new Bucket());
    return true;
  }

  bucket(name: string): Bucket | undefined {
    return this.buckets.get(name);
  }
}

// ---------------------------------------------------------------------------------------------
// The HTTP front

class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, string> = {},
  ) {
    super(message);
  }
}

const noSuchKey = (key: string) =>
  new S3Error(404, 'NoSuchKey', 'The specified key does not exist.', { Key: key });
const noSuchUpload = (id: string) =>
  new S3Error(404, 'NoSuchUpload', 'The specified upload does not exist.', { UploadId: id });
const preconditionFailed = () =>
  new S3Error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', {
    Condition: 'If-None-Match',
  });

const escapes: Record<string, string> = {
  '<': '&lt;',
  '>': '&gt;',
  '&': '&amp;',
  '"': '&quot;',
  "'": '&apos;',
};
const xmlEscape = (s: string) => (/[<>&"']/.test(s) ? s.replace(/[<>&"']/g, (c) => escapes[c]!) : s);
const xmlUnescape = (s: string) =>
  s.replace(/&(lt|gt|amp|quot|apos|#x?[0-9a-fA-F]+);/g, (_, e: string) => {
    if (e[0] === '#')
      return String.fromCodePoint(e[1] === 'x' ? Number.parseInt(e.slice(2), 16) : Number(e.slice(1)));
    return { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }[e]!;
  });
const el = (name: string, value: string | number) => `<${name}>${xmlEscape(String(value))}</${name}>`;

function classify(method: string, key: string, q: URLSearchParams, copy: boolean): S3Operation {
  if (key === '') {
    switch (method) {
      case 'GET':
        if (q.has('uploads')) return 'ListMultipartUploads';
        return q.get('list-type') === '2' ? 'ListObjectsV2' : 'ListObjects';
      case 'PUT':
        return 'CreateBucket';
      case 'DELETE':
        return 'DeleteBucket';
      case 'HEAD':
        return 'HeadBucket';
      case 'POST':
        return q.has('delete') ? 'DeleteObjects' : 'Other';
      default:
        return 'Other';
    }
  }
  switch (method) {
    case 'GET':
      if (q.has('uploadId')) return 'Other'; // ListParts, reported as Other to fault rules
      return q.has('acl') || q.has('tagging') ? 'Other' : 'GetObject';
    case 'HEAD':
      return 'HeadObject';
    case 'PUT':
      if (q.has('uploadId')) return copy ? 'UploadPartCopy' : 'UploadPart';
      return copy ? 'CopyObject' : 'PutObject';
    case 'POST':
      if (q.has('uploads')) return 'CreateMultipartUpload';
      return q.has('uploadId') ? 'CompleteMultipartUpload' : 'Other';
    case 'DELETE':
      return q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    default:
      return 'Other';
  }
}

class MemoryS3Server {
  readonly #server: http.Server;
  readonly #store: Store;
  #rule: FaultRule | undefined;
  #counts = { status: 0, stall: 0 };
  readonly requests = new Map<S3Operation, number>();
  readonly faults: FaultControl;

  constructor(store: Store) {
    this.#store = store;
    this.#server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        const e =
          err instanceof S3Error
            ? err
            : new S3Error(500, 'InternalError', (err as Error)?.message ?? String(err));
        if (res.headersSent) {
          res.destroy(e);
          return;
        }
        // The body may still be arriving: read it out so the client sees our answer, not a reset.
        req.resume();
        sendError(res, e, req.method === 'HEAD');
      });
    });
    const counts = () => this.#counts;
    this.faults = {
      set: (rule) => {
        this.#rule = rule;
      },
      clear: () => {
        this.#rule = undefined;
        this.#counts = { status: 0, stall: 0 };
      },
      get injected() {
        const { status, stall } = counts();
        return { status, stall, total: status + stall };
      },
    };
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, '127.0.0.1', () => resolve());
    });
  }

  async close(): Promise<void> {
    const closed = new Promise((resolve) => this.#server.close(resolve));
    this.#server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const path = q < 0 ? raw : raw.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
    const slash = path.indexOf('/', 1);
    const bucketName = decodeURIComponent(slash < 0 ? path.slice(1) : path.slice(1, slash));
    const key = slash < 0 ? '' : decodeURIComponent(path.slice(slash + 1));
    const method = req.method ?? 'GET';
    const operation =
      bucketName === '' ? 'ListBuckets' : classify(method, key, query, 'x-amz-copy-source' in req.headers);
    this.requests.set(operation, (this.requests.get(operation) ?? 0) + 1);

    const fault = this.#rule?.({
      operation,
      method,
      bucket: bucketName,
      key,
      query,
      headers: req.headers,
    } as FaultRequest);
    if (fault && 'status' in fault) {
      this.#counts.status++;
      const code = fault.code ?? (fault.status === 503 ? 'SlowDown' : 'InternalError');
      throw new S3Error(fault.status, code, `fault injected by the test harness into ${operation}`);
    }
    if (fault) {
      this.#counts.stall++;
      await new Promise((resolve) => setTimeout(resolve, fault.stallMs));
      if (res.destroyed) return;
    }

    if (operation === 'ListBuckets') return this.#listBuckets(res);
    if (operation === 'CreateBucket') {
      await readBody(req);
      if (!this.#store.createBucket(bucketName)) {
        throw new S3Error(
          409,
          'BucketAlreadyOwnedByYou',
          'Your previous request to create the named bucket succeeded and you already own it.',
        );
      }
      res.writeHead(200, { location: `/${bucketName}`, 'content-length': 0 }).end();
      return;
    }
    const bucket = this.#store.bucket(bucketName);
    if (!bucket) {
      throw new S3Error(404, 'NoSuchBucket', 'The specified bucket does not exist', {
        BucketName: bucketName,
      });
    }
    const uploadId = query.get('uploadId') ?? '';
    switch (operation) {
      case 'HeadBucket':
        return void res.writeHead(200, { 'content-length': 0 }).end();
      case 'DeleteBucket':
        if (bucket.size > 0)
          throw new S3Error(409, 'BucketNotEmpty', 'The bucket you tried to delete is not empty');
        this.#store.buckets.delete(bucketName);
        return void res.writeHead(204).end();
      case 'ListObjectsV2':
      case 'ListObjects':
        return this.#listObjects(res, bucketName, bucket, query, operation === 'ListObjectsV2');
      case 'ListMultipartUploads':
        return this.#listMultipartUploads(res, bucketName, query);
      case 'DeleteObjects':
        return this.#deleteObjects(req, res, bucket);
      case 'GetObject':
      case 'HeadObject':
        return this.#getObject(req, res, bucket, key, operation === 'HeadObject');
      case 'PutObject':
        return this.#putObject(req, res, bucket, key);
      case 'CopyObject':
        return this.#copyObject(req, res, bucket, key);
      case 'DeleteObject':
        await readBody(req);
        bucket.delete(key);
        return void res.writeHead(204, { 'x-amz-request-id': randomUUID() }).end();
      case 'CreateMultipartUpload':
        return this.#createMultipartUpload(req, res, bucketName, key);
      case 'UploadPart':
        return this.#uploadPart(req, res, this.#upload(bucketName, key, uploadId), query);
      case 'UploadPartCopy':
        return this.#uploadPartCopy(req, res, this.#upload(bucketName, key, uploadId), query);
      case 'CompleteMultipartUpload':
        return this.#completeMultipartUpload(req, res, bucket, this.#upload(bucketName, key, uploadId));
      case 'AbortMultipartUpload':
        await readBody(req);
        this.#upload(bucketName, key, uploadId);
        this.#store.uploads.delete(uploadId);
        return void res.writeHead(204).end();
      default:
        if (method === 'GET' && query.has('uploadId')) {
          return this.#listParts(res, bucketName, this.#upload(bucketName, key, uploadId), query);
        }
        await readBody(req);
        throw new S3Error(501, 'NotImplemented', `${method} ${raw} is not served by the in-memory S3 server`);
    }
  }

  #upload(bucket: string, key: string, uploadId: string): Upload {
    const upload = this.#store.uploads.get(uploadId);
    if (!upload || upload.bucket !== bucket || upload.key !== key) throw noSuchUpload(uploadId);
    return upload;
  }

  #listBuckets(res: ServerResponse): void {
    const buckets = [...this.#store.buckets]
      .map(
        ([name, b]) => `<Bucket>${el('Name', name)}${el('CreationDate', b.created.toISOString())}</Bucket>`,
      )
      .join('');
    sendXml(
      res,
      200,
      `<ListAllMyBucketsResult xmlns="${NS}"><Owner><ID>memory</ID></Owner><Buckets>${buckets}</Buckets></ListAllMyBucketsResult>`,
    );
  }

  #listObjects(res: ServerResponse, name: string, bucket: Bucket, query: URLSearchParams, v2: boolean): void {
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const maxKeys = Math.max(0, Math.min(1000, Number(query.get('max-keys') ?? 1000)));
    const urlEncode = query.get('encoding-type') === 'url';
    const enc = (s: string) => (urlEncode ? encodeURIComponent(s).replace(/%2F/g, '/') : s);
    const token = query.get('continuation-token');
    const startAfter = query.get('start-after') ?? '';
    const marker = query.get('marker') ?? '';

    const keys = bucket.keys();
    // Where the page starts: after the cursor (token, start-after or marker), at or after the prefix.
    let cursor = v2 ? startAfter : marker;
    let cursorIsPrefix = false;
    if (v2 && token !== null) {
      const decoded = decodeToken(token);
      if (!decoded) throw new S3Error(400, 'InvalidArgument', 'The continuation token provided is incorrect');
      [cursor, cursorIsPrefix] = decoded;
    }
    if (!v2 && delimiter && marker.endsWith(delimiter)) cursorIsPrefix = true; // v1 NextMarker may be a prefix
    let i =
      cursor && compareKeys(cursor, prefix) >= 0
        ? cursorIsPrefix
          ? pastPrefix(keys, cursor)
          : lowerBound(keys, cursor, false)
        : lowerBound(keys, prefix, true);

    const contents: string[] = [];
    const prefixes: string[] = [];
    let last = '';
    let lastIsPrefix = false;
    let truncated = false;
    while (i < keys.length) {
      const key = keys[i]!;
      if (!key.startsWith(prefix)) break;
      const object = bucket.objects.get(key);
      if (!object) {
        i++;
        continue;
      }
      if (contents.length + prefixes.length >= maxKeys) {
        truncated = true;
        break;
      }
      const cut = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
      if (cut >= 0) {
        const common = key.slice(0, cut + delimiter.length);
        prefixes.push(`<CommonPrefixes>${el('Prefix', enc(common))}</CommonPrefixes>`);
        last = common;
        lastIsPrefix = true;
        i = pastPrefix(keys, common);
        continue;
      }
      contents.push(`<Contents>${el('Key', enc(key))}${contentsTail(object)}`);
      last = key;
      lastIsPrefix = false;
      i++;
    }
    if (maxKeys === 0) truncated = i < keys.length && keys[i]!.startsWith(prefix);

    let head = `<ListBucketResult xmlns="${NS}">${el('Name', name)}${el('Prefix', enc(prefix))}`;
    if (v2) {
      if (token !== null) head += el('ContinuationToken', token);
      if (startAfter) head += el('StartAfter', enc(startAfter));
      head += el('KeyCount', contents.length + prefixes.length);
      if (truncated) head += el('NextContinuationToken', encodeToken(last, lastIsPrefix));
    } else {
      head += el('Marker', enc(marker));
      if (truncated && delimiter) head += el('NextMarker', enc(last));
    }
    head += el('MaxKeys', maxKeys);
    if (delimiter) head += el('Delimiter', enc(delimiter));
    if (urlEncode) head += '<EncodingType>url</EncodingType>';
    head += el('IsTruncated', String(truncated));
    sendXml(res, 200, `${head}${contents.join('')}${prefixes.join('')}</ListBucketResult>`);
  }

  #listMultipartUploads(res: ServerResponse, bucket: string, query: URLSearchParams): void {
    const prefix = query.get('prefix') ?? '';
    const keyMarker = query.get('key-marker') ?? '';
    const idMarker = query.get('upload-id-marker') ?? '';
    const max = Math.max(0, Math.min(1000, Number(query.get('max-uploads') ?? 1000)));
    const after = (u: Upload) => {
      if (keyMarker === '') return true;
      const byKey = compareKeys(u.key, keyMarker);
      return byKey > 0 || (byKey === 0 && idMarker !== '' && u.uploadId > idMarker);
    };
    const matching = [...this.#store.uploads.values()]
      .filter((u) => u.bucket === bucket && u.key.startsWith(prefix) && after(u))
      .sort((a, b) => compareKeys(a.key, b.key) || (a.uploadId < b.uploadId ? -1 : 1));
    const page = matching.slice(0, max);
    const truncated = matching.length > page.length;
    const last = page.at(-1);
    const uploads = page
      .map(
        (u) =>
          `<Upload>${el('Key', u.key)}${el('UploadId', u.uploadId)}<StorageClass>STANDARD</StorageClass>${el('Initiated', u.initiated.toISOString())}</Upload>`,
      )
      .join('');
    sendXml(
      res,
      200,
      `<ListMultipartUploadsResult xmlns="${NS}">${el('Bucket', bucket)}${el('KeyMarker', keyMarker)}${el('UploadIdMarker', idMarker)}` +
        (truncated && last ? el('NextKeyMarker', last.key) + el('NextUploadIdMarker', last.uploadId) : '') +
        `${el('Prefix', prefix)}${el('MaxUploads', max)}${el('IsTruncated', String(truncated))}${uploads}</ListMultipartUploadsResult>`,
    );
  }

  #listParts(res: ServerResponse, bucket: string, upload: Upload, query: URLSearchParams): void {
    const marker = Number(query.get('part-number-marker') ?? 0);
    const max = Math.max(0, Math.min(1000, Number(query.get('max-parts') ?? 1000)));
    const numbers = [...upload.parts.keys()].filter((n) => n > marker).sort((a, b) => a - b);
    const page = numbers.slice(0, max);
    const truncated = numbers.length > page.length;
    const parts = page
      .map((n) => {
        const p = upload.parts.get(n)!;
        return `<Part>${el('PartNumber', n)}${el('LastModified', p.lastModified.toISOString())}${el('ETag', p.etag)}${el('Size', p.size)}</Part>`;
      })
      .join('');
    sendXml(
      res,
      200,
      `<ListPartsResult xmlns="${NS}">${el('Bucket', bucket)}${el('Key', upload.key)}${el('UploadId', upload.uploadId)}` +
        `${el('PartNumberMarker', marker)}${truncated ? el('NextPartNumberMarker', page.at(-1)!) : ''}${el('MaxParts', max)}` +
        `${el('IsTruncated', String(truncated))}<StorageClass>STANDARD</StorageClass>${parts}</ListPartsResult>`,
    );
  }

  async #deleteObjects(req: IncomingMessage, res: ServerResponse, bucket: Bucket): Promise<void> {
    const xml = Buffer.concat((await readBody(req)).chunks).toString('utf8');
    const quiet = /<Quiet>\s*true\s*<\/Quiet>/.test(xml);
    const keys = [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => xmlUnescape(m[1]!));
    if (keys.length > 1000) throw new S3Error(400, 'MalformedXML', 'DeleteObjects takes at most 1000 keys');
    for (const key of keys) bucket.delete(key);
    const deleted = quiet ? '' : keys.map((k) => `<Deleted>${el('Key', k)}</Deleted>`).join('');
    sendXml(res, 200, `<DeleteResult xmlns="${NS}">${deleted}</DeleteResult>`);
  }

  async #getObject(req: IncomingMessage, res: ServerResponse, bucket: Bucket, key: string, head: boolean) {
    const object = bucket.get(key);
    if (!object) {
      if (head) return void res.writeHead(404, { 'x-amz-request-id': randomUUID() }).end();
      throw noSuchKey(key);
    }
    const ifMatch = req.headers['if-match'];
    if (ifMatch && ifMatch !== '*' && ifMatch !== object.etag) {
      if (head) return void res.writeHead(412).end();
      throw new S3Error(
        412,
        'PreconditionFailed',
        'At least one of the pre-conditions you specified did not hold',
        { Condition: 'If-Match' },
      );
    }
    const ifNoneMatch = req.headers['if-none-match'];
    if (ifNoneMatch && (ifNoneMatch === '*' || ifNoneMatch === object.etag)) {
      return void res.writeHead(304, { etag: object.etag }).end();
    }
    const headers: http.OutgoingHttpHeaders = {
      'accept-ranges': 'bytes',
      etag: object.etag,
      'last-modified': object.lastModified.toUTCString(),
      'content-type': object.contentType ?? 'binary/octet-stream',
      'x-amz-request-id': randomUUID(),
    };
    for (const [k, v] of Object.entries(object.metadata)) headers[`x-amz-meta-${k}`] = v;
    let start = 0;
    let end = object.size; // exclusive
    let status = 200;
    const range = req.headers.range;
    if (range) {
      const parsed = parseRange(range, object.size);
      if (parsed === 'unsatisfiable') {
        if (head) return void res.writeHead(416).end();
        throw new S3Error(416, 'InvalidRange', 'The requested range is not satisfiable', {
          RangeRequested: range,
          ActualObjectSize: String(object.size),
        });
      }
      if (parsed) {
        [start, end] = parsed;
        status = 206;
        headers['content-range'] = `bytes ${start}-${end - 1}/${object.size}`;
      }
    }
    headers['content-length'] = end - start;
    res.writeHead(status, headers);
    if (head) return void res.end();
    await writeSlices(res, object.chunks, start, end);
  }

  async #putObject(req: IncomingMessage, res: ServerResponse, bucket: Bucket, key: string): Promise<void> {
    const conditions = writeConditions(req);
    checkWriteConditions(conditions, bucket.get(key)); // early, to spare the upload
    const body = await readBody(req, true);
    checkWriteConditions(conditions, bucket.get(key)); // again, as the body arrived: this decides
    const etag = `"${body.md5!.digest('hex')}"`;
    bucket.put(key, {
      chunks: body.chunks,
      size: body.size,
      etag,
      lastModified: new Date(),
      contentType: req.headers['content-type'],
      metadata: metadataOf(req),
    });
    res.writeHead(200, { etag, 'x-amz-request-id': randomUUID(), 'content-length': 0 }).end();
  }

  #copySource(req: IncomingMessage): StoredObject {
    const raw = decodeURIComponent(String(req.headers['x-amz-copy-source']).split('?')[0]!).replace(
      /^\//,
      '',
    );
    const slash = raw.indexOf('/');
    const source = this.#store.bucket(raw.slice(0, slash))?.get(raw.slice(slash + 1));
    if (!source) throw noSuchKey(raw.slice(slash + 1));
    return source;
  }

  async #copyObject(req: IncomingMessage, res: ServerResponse, bucket: Bucket, key: string): Promise<void> {
    await readBody(req);
    const source = this.#copySource(req);
    const replace = req.headers['x-amz-metadata-directive'] === 'REPLACE';
    const lastModified = new Date();
    bucket.put(key, {
      ...source,
      lastModified,
      contentType: replace ? req.headers['content-type'] : source.contentType,
      metadata: replace ? metadataOf(req) : source.metadata,
    });
    sendXml(
      res,
      200,
      `<CopyObjectResult>${el('LastModified', lastModified.toISOString())}${el('ETag', source.etag)}</CopyObjectResult>`,
    );
  }

  async #createMultipartUpload(req: IncomingMessage, res: ServerResponse, bucket: string, key: string) {
    await readBody(req);
    const uploadId = randomUUID().replaceAll('-', '');
    this.#store.uploads.set(uploadId, {
      bucket,
      key,
      uploadId,
      initiated: new Date(),
      contentType: req.headers['content-type'],
      metadata: metadataOf(req),
      parts: new Map(),
    });
    sendXml(
      res,
      200,
      `<InitiateMultipartUploadResult xmlns="${NS}">${el('Bucket', bucket)}${el('Key', key)}${el('UploadId', uploadId)}</InitiateMultipartUploadResult>`,
    );
  }

  async #uploadPart(req: IncomingMessage, res: ServerResponse, upload: Upload, query: URLSearchParams) {
    const partNumber = partNumberOf(query);
    const body = await readBody(req, true);
    if (!this.#store.uploads.has(upload.uploadId)) throw noSuchUpload(upload.uploadId); // aborted meanwhile
    const md5 = body.md5!.digest();
    const etag = `"${md5.toString('hex')}"`;
    upload.parts.set(partNumber, {
      chunks: body.chunks,
      size: body.size,
      etag,
      md5,
      lastModified: new Date(),
    });
    res.writeHead(200, { etag, 'x-amz-request-id': randomUUID(), 'content-length': 0 }).end();
  }

  async #uploadPartCopy(req: IncomingMessage, res: ServerResponse, upload: Upload, query: URLSearchParams) {
    const partNumber = partNumberOf(query);
    await readBody(req);
    const source = this.#copySource(req);
    let [start, end] = [0, source.size];
    const range = req.headers['x-amz-copy-source-range'];
    if (range) {
      const m = /^bytes=(\d+)-(\d+)$/.exec(String(range));
      if (!m || Number(m[1]) > Number(m[2]) || Number(m[2]) >= source.size) {
        throw new S3Error(
          400,
          'InvalidArgument',
          `The x-amz-copy-source-range value ${range} is not valid for an object of ${source.size} bytes`,
        );
      }
      [start, end] = [Number(m[1]), Number(m[2]) + 1];
    }
    const chunks = sliceChunks(source.chunks, start, end);
    const hash = createHash('md5');
    for (const c of chunks) hash.update(c);
    const md5 = hash.digest();
    const etag = `"${md5.toString('hex')}"`;
    const lastModified = new Date();
    upload.parts.set(partNumber, { chunks, size: end - start, etag, md5, lastModified });
    sendXml(
      res,
      200,
      `<CopyPartResult>${el('LastModified', lastModified.toISOString())}${el('ETag', etag)}</CopyPartResult>`,
    );
  }

  async #completeMultipartUpload(req: IncomingMessage, res: ServerResponse, bucket: Bucket, upload: Upload) {
    const conditions = writeConditions(req);
    const xml = Buffer.concat((await readBody(req)).chunks).toString('utf8');
    const listed = [...xml.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map((m) => ({
      number: Number(/<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(m[1]!)?.[1]),
      etag: xmlUnescape(/<ETag>([^<]*)<\/ETag>/.exec(m[1]!)?.[1] ?? ''),
    }));
    if (listed.length === 0) {
      throw new S3Error(
        400,
        'MalformedXML',
        'The XML you provided was not well-formed or did not validate against our published schema',
      );
    }
    const parts: Part[] = [];
    let previous = 0;
    for (const [i, { number, etag }] of listed.entries()) {
      if (!(number > previous))
        throw new S3Error(400, 'InvalidPartOrder', 'The list of parts was not in ascending order.');
      previous = number;
      const part = upload.parts.get(number);
      const unquoted = (s: string) => s.replace(/^"|"$/g, '');
      if (!part || unquoted(part.etag) !== unquoted(etag)) {
        throw new S3Error(400, 'InvalidPart', 'One or more of the specified parts could not be found.', {
          PartNumber: String(number),
        });
      }
      if (i < listed.length - 1 && part.size < this.#store.minPartSize) {
        throw new S3Error(
          400,
          'EntityTooSmall',
          'Your proposed upload is smaller than the minimum allowed object size.',
          {
            PartNumber: String(number),
            ProposedSize: String(part.size),
          },
        );
      }
      parts.push(part);
    }
    if (!this.#store.uploads.has(upload.uploadId)) throw noSuchUpload(upload.uploadId);
    checkWriteConditions(conditions, bucket.get(upload.key));
    const hash = createHash('md5');
    for (const p of parts) hash.update(p.md5);
    const etag = `"${hash.digest('hex')}-${parts.length}"`;
    bucket.put(upload.key, {
      chunks: parts.flatMap((p) => p.chunks),
      size: parts.reduce((n, p) => n + p.size, 0),
      etag,
      lastModified: new Date(),
      contentType: upload.contentType,
      metadata: upload.metadata,
    });
    this.#store.uploads.delete(upload.uploadId);
    sendXml(
      res,
      200,
      `<CompleteMultipartUploadResult xmlns="${NS}">${el('Location', `/${upload.bucket}/${upload.key}`)}${el('Bucket', upload.bucket)}${el('Key', upload.key)}${el('ETag', etag)}</CompleteMultipartUploadResult>`,
    );
  }
}

/**
 * What follows the key in a listing entry. Cached per stored object: seeded objects share one, so a
 * page of a million-key listing formats one date, not a thousand.
 */
const tails = new WeakMap<StoredObject, string>();
function contentsTail(object: StoredObject): string {
  let tail = tails.get(object);
  if (tail === undefined) {
    tail = `${el('LastModified', object.lastModified.toISOString())}${el('ETag', object.etag)}${el('Size', object.size)}<StorageClass>STANDARD</StorageClass></Contents>`;
    tails.set(object, tail);
  }
  return tail;
}

function partNumberOf(query: URLSearchParams): number {
  const n = Number(query.get('partNumber'));
  if (!Number.isInteger(n) || n < 1 || n > 10_000) {
    throw new S3Error(
      400,
      'InvalidArgument',
      'Part number must be an integer between 1 and 10000, inclusive',
    );
  }
  return n;
}

interface WriteConditions {
  readonly ifNoneMatch: string | undefined;
  readonly ifMatch: string | undefined;
}

function writeConditions(req: IncomingMessage): WriteConditions {
  const ifNoneMatch = req.headers['if-none-match'];
  if (ifNoneMatch !== undefined && ifNoneMatch !== '*') {
    throw new S3Error(501, 'NotImplemented', 'If-None-Match on a write takes only *');
  }
  return { ifNoneMatch, ifMatch: req.headers['if-match'] };
}

function checkWriteConditions(c: WriteConditions, existing: StoredObject | undefined): void {
  if (c.ifNoneMatch === '*' && existing) throw preconditionFailed();
  if (c.ifMatch !== undefined) {
    if (!existing) throw noSuchKey('');
    if (c.ifMatch !== '*' && c.ifMatch !== existing.etag) {
      throw new S3Error(
        412,
        'PreconditionFailed',
        'At least one of the pre-conditions you specified did not hold',
        { Condition: 'If-Match' },
      );
    }
  }
}

function metadataOf(req: IncomingMessage): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith('x-amz-meta-') && typeof value === 'string') metadata[name.slice(11)] = value;
  }
  return metadata;
}

/** [start, end) of a Range header, undefined to serve the whole object (S3 ignores a malformed one). */
function parseRange(header: string, size: number): [number, number] | 'unsatisfiable' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return [Math.max(0, size - n), size];
  }
  const start = Number(m[1]);
  if (start >= size) return 'unsatisfiable';
  const last = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (last < start) return undefined;
  return [start, last + 1];
}

/** The chunks covering [start, end), as views of the originals. */
function sliceChunks(chunks: readonly Buffer[], start: number, end: number): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  for (const c of chunks) {
    const from = Math.max(start - offset, 0);
    const to = Math.min(end - offset, c.length);
    if (to > from) out.push(from === 0 && to === c.length ? c : c.subarray(from, to));
    offset += c.length;
    if (offset >= end) break;
  }
  return out;
}

async function writeSlices(res: ServerResponse, chunks: readonly Buffer[], start: number, end: number) {
  for (const slice of sliceChunks(chunks, start, end)) {
    if (res.destroyed) return;
    if (!res.write(slice)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    }
  }
  res.end();
}

interface Body {
  readonly chunks: Buffer[];
  readonly size: number;
  readonly md5: ReturnType<typeof createHash> | undefined;
}

/**
 * The request's body as the chunks that arrived (decoded from aws-chunked when the SDK streams with
 * a trailing checksum), with its MD5 when `hash` is set.
 */
async function readBody(req: IncomingMessage, hash = false): Promise<Body> {
  const md5 = hash ? createHash('md5') : undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  const take = (c: Buffer) => {
    if (c.length === 0) return;
    chunks.push(c);
    size += c.length;
    md5?.update(c);
  };
  const encoding = String(req.headers['content-encoding'] ?? '');
  const sha = String(req.headers['x-amz-content-sha256'] ?? '');
  if (encoding.split(',').some((e) => e.trim() === 'aws-chunked') || sha.startsWith('STREAMING-')) {
    const decoder = new AwsChunkedDecoder(take);
    for await (const c of req) decoder.push(c as Buffer);
    decoder.end();
    const declared = req.headers['x-amz-decoded-content-length'];
    if (declared !== undefined && Number(declared) !== size) {
      throw new S3Error(400, 'IncompleteBody', `The request body ended after ${size} of ${declared} bytes`);
    }
  } else {
    // S3 checks a checksum sent as a header against the body (the writer sends CRC32s with
    // UNSIGNED-PAYLOAD, so this is what guards its parts); trailing checksums are not verified.
    const expected = req.headers['x-amz-checksum-crc32'];
    let crc = 0;
    for await (const c of req) {
      take(c as Buffer);
      if (expected !== undefined) crc = crc32(c as Buffer, crc);
    }
    if (expected !== undefined) {
      const actual = Buffer.alloc(4);
      actual.writeUInt32BE(crc);
      if (actual.toString('base64') !== expected) {
        throw new S3Error(400, 'BadDigest', 'The CRC32 you specified did not match the calculated checksum.');
      }
    }
  }
  return { chunks, size, md5 };
}

/**
 * aws-chunked framing: `<hex size>[;chunk-signature=…]\r\n<bytes>\r\n` … `0\r\n<trailers>\r\n\r\n`.
 * Data is passed on as views of the arriving Buffers; only a header line split across two arrivals
 * is copied.
 */
class AwsChunkedDecoder {
  #left = 0; // data bytes still to come in the current chunk
  #skip = 0; // bytes of the \r\n after a chunk's data still to skip
  #line: Buffer | undefined; // a partial header line
  #done = false;
  constructor(readonly take: (chunk: Buffer) => void) {}

  push(input: Buffer): void {
    let b = input;
    while (b.length > 0 && !this.#done) {
      if (this.#left > 0) {
        const n = Math.min(this.#left, b.length);
        this.take(b.subarray(0, n));
        this.#left -= n;
        b = b.subarray(n);
        if (this.#left === 0) this.#skip = 2;
        continue;
      }
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, b.length);
        this.#skip -= n;
        b = b.subarray(n);
        continue;
      }
      const nl = b.indexOf(10);
      if (nl < 0) {
        this.#line = this.#line ? Buffer.concat([this.#line, b]) : b;
        return;
      }
      const line = (this.#line ? Buffer.concat([this.#line, b.subarray(0, nl)]) : b.subarray(0, nl)).toString(
        'latin1',
      );
      this.#line = undefined;
      b = b.subarray(nl + 1);
      const size = Number.parseInt(line.split(';')[0]!.trim(), 16);
      if (!Number.isFinite(size))
        throw new S3Error(400, 'IncompleteBody', `bad aws-chunked chunk header "${line}"`);
      if (size === 0) this.#done = true; // trailers follow; they carry checksums we do not verify
      this.#left = size;
    }
  }

  end(): void {
    if (!this.#done || this.#left > 0)
      throw new S3Error(400, 'IncompleteBody', 'the aws-chunked body ended early');
  }
}

function encodeToken(last: string, isPrefix: boolean): string {
  return Buffer.from(`${isPrefix ? 'p' : 'k'}${last}`, 'utf8').toString('base64url');
}

function decodeToken(token: string): [string, boolean] | undefined {
  const s = Buffer.from(token, 'base64url').toString('utf8');
  if (s[0] !== 'p' && s[0] !== 'k') return undefined;
  return [s.slice(1), s[0] === 'p'];
}

function sendXml(res: ServerResponse, status: number, body: string): void {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n${body}`;
  res.writeHead(status, {
    'content-type': 'application/xml',
    'content-length': Buffer.byteLength(xml),
    'x-amz-request-id': randomUUID(),
  });
  res.end(xml);
}

function sendError(res: ServerResponse, e: S3Error, head: boolean): void {
  if (head) {
    res.writeHead(e.status, { 'x-amz-request-id': randomUUID() }).end();
    return;
  }
  const extra = Object.entries(e.extra)
    .map(([k, v]) => el(k, v))
    .join('');
  sendXml(
    res,
    e.status,
    `<Error>${el('Code', e.code)}${el('Message', e.message)}${extra}${el('RequestId', randomUUID())}</Error>`,
  );
}
