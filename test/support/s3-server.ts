/**
 * A real S3 wire-protocol server on loopback for tests: s3rver 3.7.1 plus the multipart calls it
 * lacks, behind a small HTTP front that can also inject faults.
 *
 *   SDK ──► front (this process) ──► s3rver (child process, `node --openssl-legacy-provider`)
 *            │ ListMultipartUploads, AbortMultipartUpload    (s3rver: 501 / 405)
 *            │ NoSuchUpload for parts sent to an aborted upload (s3rver would recreate it)
 *            │ UploadPartCopy, only with `uploadPartCopy: true` (s3rver: 501 NotImplemented)
 *            │ PutObject with `If-None-Match: *` on an existing key: 412 (s3rver ignores the condition)
 *            └ faults: 500/503 answers or stalls, chosen per request by a test's rule
 *
 * Why a child process: s3rver signs ListObjectsV2 continuation tokens with DES, which OpenSSL 3
 * offers only through its legacy provider, and Node 20 loads providers only at start-up (there is
 * no in-process switch; `crypto.createCipheriv('des', …)` fails in a normal process). The front
 * stays in the test's process so a fault rule can be a plain function.
 *
 * The front reads and edits s3rver's filesystem store directly (lib/stores/filesystem.js):
 *   <dir>/<bucket>/<key dirs>/<name>._S3rver_object           object bytes
 *   <dir>/<bucket>/._S3rver_uploads/<uploadId>/key            the upload's key
 *   <dir>/<bucket>/._S3rver_uploads/<uploadId>/<n>[.md5]      part n
 * Requests the front answers itself skip authentication; s3rver checks the rest, though for SigV4
 * only the access key (it does not verify v4 signatures).
 *
 * s3rver quirks the front corrects: `Range: bytes=0-0` returned the whole object (s3rver takes an
 * end of 0 as "no end"); the front trims the answer to the first byte.
 * s3rver quirks left as they are: listings come in folder-walk order, so a key that continues a
 * folder's name with a character below '/' (`a-b` beside `a/x`) is listed after that folder's keys,
 * where S3 (UTF-8 byte order) lists it before; and a page boundary falling between them can lose
 * it. Tests against the harness should not depend on that order. Suffix ranges (`bytes=-N`) are
 * not supported (S3Storage never sends them).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { DEFAULT_MAX_ATTEMPTS, S3Storage } from '../../src/storage/s3';

const CHILD_SCRIPT = fileURLToPath(new URL('./s3rver-child.mjs', import.meta.url));
/** s3rver's built-in account (lib/models/account.js). */
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const UPLOADS_DIR = '._S3rver_uploads';

/** The S3 operation a request is, as far as a fault rule needs to know. */
export type S3Operation =
  | 'ListBuckets'
  | 'CreateBucket'
  | 'DeleteBucket'
  | 'HeadBucket'
  | 'ListObjects'
  | 'ListObjectsV2'
  | 'ListMultipartUploads'
  | 'DeleteObjects'
  | 'GetObject'
  | 'HeadObject'
  | 'PutObject'
  | 'CopyObject'
  | 'DeleteObject'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'UploadPartCopy'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'Other';

export interface FaultRequest {
  readonly operation: S3Operation;
  readonly method: string;
  readonly bucket: string;
  /** '' for bucket-level requests. */
  readonly key: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
}

/**
 * What to do to one request: answer with an S3 error (500 InternalError / 503 SlowDown / 501 NotImplemented unless `code`
 * says otherwise), or hold it `stallMs` before serving it normally.
 */
export type Fault =
  | { readonly status: 500 | 501 | 503; readonly code?: string }
  | { readonly stallMs: number };
export type FaultRule = (request: FaultRequest) => Fault | undefined;

export interface FaultControl {
  /** Consulted once per HTTP request (so once per SDK attempt). */
  set(rule: FaultRule | undefined): void;
  /** Removes the rule and zeroes the counters. */
  clear(): void;
  /** Faults injected since the last clear(). */
  readonly injected: { readonly status: number; readonly stall: number; readonly total: number };
}

/** A rule that applies `fault` to the first `times` requests that `match`, then lets all through. */
export function faultTimes(
  times: number,
  match: (request: FaultRequest) => boolean,
  fault: Fault,
): FaultRule {
  let left = times;
  return (request) => {
    if (left <= 0 || !match(request)) return undefined;
    left--;
    return fault;
  };
}

export interface S3HarnessOptions {
  /** Buckets created before start() resolves. @default ['test-bucket'] */
  readonly buckets?: readonly string[];
  /** Serve UploadPartCopy in the front, so concat's server-side path can be tested. @default false */
  readonly uploadPartCopy?: boolean;
}

export interface S3Harness {
  /** `http://127.0.0.1:<port>` of the front. */
  readonly endpoint: string;
  /** s3rver's store, for tests that must look behind the API. */
  readonly directory: string;
  /** The s3rver child process, so a test can check that stop() ended it. */
  readonly serverPid: number;
  /** Configured as REFERENCE.md says s3rver needs: path style, checksums only when required. */
  readonly client: S3Client;
  /** The configuration `client` was built from, for variants (`{ ...clientConfig, maxAttempts: 1 }`). */
  readonly clientConfig: S3ClientConfig;
  readonly storage: S3Storage;
  readonly faults: FaultControl;
  createBucket(name: string): Promise<void>;
  /**
   * Writes objects straight into s3rver's store: many objects in milliseconds, where PutObject takes
   * about 2 ms each. For suites that need a big listing, not for testing writes.
   */
  seed(bucket: string, objects: Iterable<readonly [key: string, body: Buffer | string]>): Promise<void>;
  stop(): Promise<void>;
}

/** Multipart uploads begun in `bucket` and not completed or aborted, counted from s3rver's store. */
export async function countIncompleteUploads(harness: Pick<S3Harness, 'directory'>, bucket: string) {
  // Every upload folder counts, even one without its `key` file: that is leaked storage too.
  return (await readdir(join(harness.directory, bucket, UPLOADS_DIR)).catch(() => [])).length;
}

export async function startS3Server(options: S3HarnessOptions = {}): Promise<S3Harness> {
  const buckets = options.buckets ?? ['test-bucket'];
  const directory = await mkdtemp(join(tmpdir(), 's3rver-'));
  const child = fork(CHILD_SCRIPT, [JSON.stringify({ directory, buckets })], {
    execArgv: ['--openssl-legacy-provider'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const front = new Front(directory, options.uploadPartCopy ?? false);
  try {
    const [port] = await Promise.all([childPort(child), front.listen()]);
    front.upstreamPort = port;
  } catch (err) {
    child.kill();
    await front.close().catch(() => {});
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${front.port}`;
  const clientConfig: S3ClientConfig = {
    endpoint,
    region: 'us-east-1',
    credentials: CREDENTIALS,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    retryMode: 'standard',
    maxAttempts: DEFAULT_MAX_ATTEMPTS, // as S3Storage's own clients, so retry behaviour matches production
  };
  const client = new S3Client(clientConfig);
  let stopped = false;
  return {
    endpoint,
    directory,
    serverPid: child.pid!,
    client,
    clientConfig,
    storage: new S3Storage({ client }),
    faults: front.faults,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async seed(bucket, objects) {
      for (const [key, body] of objects) {
        const path = objectPath(directory, bucket, key);
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, body); // s3rver derives size, ETag and metadata from the file when asked
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      client.destroy();
      await front.close();
      await stopChild(child);
      await rm(directory, { recursive: true, force: true });
    },
  };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Where s3rver keeps an object's bytes (FilesystemStore.getResourcePath). */
function objectPath(directory: string, bucket: string, key: string): string {
  const parts = key.split('/');
  const name = parts.pop();
  return join(directory, bucket, ...parts, `${name}._S3rver_object`);
}

function childPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve((m as { port: number }).port));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`s3rver exited during start-up (code ${code})`)));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.disconnect(); // the child exits on disconnect
  const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
  await exited;
  clearTimeout(timer);
}

function classify(method: string, key: string, q: URLSearchParams, h: IncomingHttpHeaders): S3Operation {
  const copy = 'x-amz-copy-source' in h;
  if (key === '') {
    if (method === 'GET') {
      if (q.has('uploads')) return 'ListMultipartUploads';
      return q.get('list-type') === '2' ? 'ListObjectsV2' : 'ListObjects';
    }
    if (method === 'PUT' && q.size === 0) return 'CreateBucket';
    if (method === 'DELETE' && q.size === 0) return 'DeleteBucket';
    if (method === 'HEAD') return 'HeadBucket';
    if (method === 'POST' && q.has('delete')) return 'DeleteObjects';
    return 'Other';
  }
  switch (method) {
    case 'GET':
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

const xmlEscape = (s: string) =>
  s.replace(/[<>&"']/g, (c) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' }[c]};`);

const XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n';

function sendXml(res: ServerResponse, status: number, body: string): void {
  const xml = XML_HEAD + body;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
  res.end(xml);
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  sendXml(
    res,
    status,
    `<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message><RequestId>${randomUUID()}</RequestId></Error>`,
  );
}

/** Reads and discards a request body, so an early answer does not race the client's upload. */
async function drain(req: IncomingMessage): Promise<void> {
  req.resume();
  if (req.readableEnded) return;
  await new Promise<void>((resolve) => {
    req.once('end', resolve);
    req.once('close', resolve);
  });
}

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

interface Upload {
  readonly key: string;
  readonly uploadId: string;
  readonly initiated: Date;
}

class Front {
  readonly #server = http.createServer((req, res) => {
    this.#handle(req, res).catch((err: Error) => {
      if (!res.headersSent) sendError(res, 500, 'InternalError', err.message);
      else res.destroy(err);
    });
  });
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  readonly #directory: string;
  readonly #uploadPartCopy: boolean;
  /** Requests being proxied per upload id, so an abort waits for parts still landing. */
  readonly #inFlight = new Map<string, Set<Promise<void>>>();
  readonly #aborted = new Set<string>();
  #rule: FaultRule | undefined;
  #counts = { status: 0, stall: 0 };
  upstreamPort = 0;

  readonly faults: FaultControl;

  constructor(directory: string, uploadPartCopy: boolean) {
    this.#directory = directory;
    this.#uploadPartCopy = uploadPartCopy;
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

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
  }

  async close(): Promise<void> {
    const closed = new Promise((resolve) => this.#server.close(resolve));
    this.#server.closeAllConnections();
    this.#agent.destroy();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://front');
    const [bucketPart = '', ...keyParts] = url.pathname.slice(1).split('/');
    const bucket = decodeURIComponent(bucketPart);
    const key = decodeURIComponent(keyParts.join('/'));
    const method = req.method ?? 'GET';
    const query = url.searchParams;
    const operation = classify(method, key, query, req.headers);

    const fault = this.#rule?.({ operation, method, bucket, key, query, headers: req.headers });
    if (fault && 'status' in fault) {
      this.#counts.status++;
      await drain(req);
      const code =
        fault.code ??
        ({ 501: 'NotImplemented', 503: 'SlowDown' } as const)[fault.status as 501] ??
        'InternalError';
      sendError(res, fault.status, code, `fault injected by the test harness into ${operation}`);
      return;
    }
    if (fault) {
      this.#counts.stall++;
      await new Promise((resolve) => setTimeout(resolve, fault.stallMs));
      if (res.destroyed) return; // the client gave up while we stalled
    }

    const uploadId = query.get('uploadId') ?? '';
    switch (operation) {
      case 'ListMultipartUploads':
        return this.#listMultipartUploads(res, bucket, query);
      case 'AbortMultipartUpload':
        return this.#abortMultipartUpload(res, bucket, key, uploadId);
      case 'UploadPart':
      case 'UploadPartCopy':
      case 'CompleteMultipartUpload': {
        if (!(await this.#uploadExists(bucket, key, uploadId))) {
          await drain(req);
          return sendError(res, 404, 'NoSuchUpload', `upload ${uploadId} does not exist`);
        }
        if (operation === 'UploadPartCopy' && this.#uploadPartCopy) {
          return this.#track(uploadId, this.#uploadPartCopyHere(req, res, bucket, uploadId, query));
        }
        return this.#track(uploadId, this.#forward(req, res));
      }
      case 'GetObject':
        return this.#forward(req, res, req.headers.range === 'bytes=0-0');
      case 'PutObject':
        // s3rver ignores conditional writes. Checked here, then forwarded: atomic enough for tests
        // whose conditional writes of one key do not race (each Storage.putIfAbsent caller's).
        if (
          req.headers['if-none-match'] === '*' &&
          (await exists(objectPath(this.#directory, bucket, key)))
        ) {
          await drain(req);
          return sendError(
            res,
            412,
            'PreconditionFailed',
            'At least one of the pre-conditions you specified did not hold',
          );
        }
        return this.#forward(req, res);
      default:
        return this.#forward(req, res);
    }
  }

  /**
   * Proxies to s3rver unchanged (headers included, so its signature check still holds).
   * `firstByteOnly` trims s3rver's answer to `bytes=0-0`, which it serves as the whole object.
   */
  #forward(req: IncomingMessage, res: ServerResponse, firstByteOnly = false): Promise<void> {
    return new Promise((resolve) => {
      const upstream = http.request(
        {
          host: '127.0.0.1',
          port: this.upstreamPort,
          method: req.method,
          path: req.url,
          headers: req.headers,
          agent: this.#agent,
        },
        (answer) => {
          if (firstByteOnly && answer.statusCode === 206) {
            const total = /\/(\d+)$/.exec(String(answer.headers['content-range']))?.[1];
            const headers = {
              ...answer.headers,
              'content-range': `bytes 0-0/${total}`,
              'content-length': '1',
            };
            res.writeHead(206, headers);
            answer.once('data', (chunk: Buffer) => res.end(chunk.subarray(0, 1)));
            answer.resume();
            return;
          }
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', (err) => {
        if (!res.headersSent) sendError(res, 502, 'BadGateway', err.message);
        else res.destroy(err);
      });
      res.once('close', () => {
        if (!res.writableFinished) upstream.destroy();
        resolve();
      });
      req.pipe(upstream);
    });
  }

  async #track(uploadId: string, exchange: Promise<void>): Promise<void> {
    const set = this.#inFlight.get(uploadId) ?? new Set<Promise<void>>();
    this.#inFlight.set(uploadId, set);
    set.add(exchange);
    try {
      await exchange;
    } finally {
      set.delete(exchange);
      if (set.size === 0) this.#inFlight.delete(uploadId);
    }
  }

  #uploadDir(bucket: string, uploadId: string): string {
    return join(this.#directory, bucket, UPLOADS_DIR, uploadId);
  }

  async #uploadExists(bucket: string, key: string, uploadId: string): Promise<boolean> {
    if (!/^[0-9a-f]+$/.test(uploadId) || this.#aborted.has(uploadId)) return false;
    const stored = await readFile(join(this.#uploadDir(bucket, uploadId), 'key'), 'utf8').catch(
      () => undefined,
    );
    return stored === key;
  }

  async #bucketExists(res: ServerResponse, bucket: string): Promise<boolean> {
    const found = await stat(join(this.#directory, bucket)).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (!found) sendError(res, 404, 'NoSuchBucket', `The specified bucket does not exist: ${bucket}`);
    return found;
  }

  async #uploads(bucket: string): Promise<Upload[]> {
    const root = join(this.#directory, bucket, UPLOADS_DIR);
    const ids = await readdir(root).catch(() => [] as string[]);
    const uploads = await Promise.all(
      ids.map(async (uploadId) => {
        const keyFile = join(root, uploadId, 'key');
        try {
          const [key, info] = await Promise.all([readFile(keyFile, 'utf8'), stat(keyFile)]);
          return { key, uploadId, initiated: info.mtime };
        } catch {
          return undefined; // being aborted or completed right now
        }
      }),
    );
    return uploads
      .filter((u): u is Upload => u !== undefined && !this.#aborted.has(u.uploadId))
      .sort((a, b) => byteOrder(a.key, b.key) || byteOrder(a.uploadId, b.uploadId));
  }

  async #listMultipartUploads(res: ServerResponse, bucket: string, query: URLSearchParams): Promise<void> {
    if (!(await this.#bucketExists(res, bucket))) return;
    if (query.has('delimiter')) {
      return sendError(res, 501, 'NotImplemented', 'the test harness does not group uploads by delimiter');
    }
    const prefix = query.get('prefix') ?? '';
    const keyMarker = query.get('key-marker') ?? '';
    const idMarker = query.get('upload-id-marker') ?? '';
    const max = Math.min(1000, Number(query.get('max-uploads') ?? 1000));
    // S3's cursor: keys after key-marker, or the same key with a later upload id when one is given.
    const after = (u: Upload) => {
      const byKey = byteOrder(u.key, keyMarker);
      return byKey > 0 || (byKey === 0 && idMarker !== '' && byteOrder(u.uploadId, idMarker) > 0);
    };
    const matching = (await this.#uploads(bucket)).filter(
      (u) => u.key.startsWith(prefix) && (keyMarker === '' || after(u)),
    );
    const page = matching.slice(0, max);
    const truncated = matching.length > page.length;
    const last = page.at(-1);
    const el = (name: string, value: string) => `<${name}>${xmlEscape(value)}</${name}>`;
    sendXml(
      res,
      200,
      '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
        el('Bucket', bucket) +
        el('KeyMarker', keyMarker) +
        el('UploadIdMarker', idMarker) +
        (truncated && last ? el('NextKeyMarker', last.key) + el('NextUploadIdMarker', last.uploadId) : '') +
        el('Prefix', prefix) +
        el('MaxUploads', String(max)) +
        el('IsTruncated', String(truncated)) +
        page
          .map(
            (u) =>
              '<Upload>' +
              el('Key', u.key) +
              el('UploadId', u.uploadId) +
              el('StorageClass', 'STANDARD') +
              el('Initiated', u.initiated.toISOString()) +
              '</Upload>',
          )
          .join('') +
        '</ListMultipartUploadsResult>',
    );
  }

  async #abortMultipartUpload(res: ServerResponse, bucket: string, key: string, uploadId: string) {
    if (!(await this.#bucketExists(res, bucket))) return;
    if (!(await this.#uploadExists(bucket, key, uploadId))) {
      return sendError(res, 404, 'NoSuchUpload', `upload ${uploadId} does not exist`);
    }
    this.#aborted.add(uploadId);
    // Parts already being written finish first; s3rver would otherwise recreate the folder.
    await Promise.all(this.#inFlight.get(uploadId) ?? []);
    await rm(this.#uploadDir(bucket, uploadId), { recursive: true, force: true });
    res.writeHead(204).end();
  }

  /** UploadPartCopy, written straight into s3rver's upload folder in the layout it completes from. */
  async #uploadPartCopyHere(
    req: IncomingMessage,
    res: ServerResponse,
    bucket: string,
    uploadId: string,
    query: URLSearchParams,
  ): Promise<void> {
    await drain(req);
    const source = decodeURIComponent(String(req.headers['x-amz-copy-source'])).replace(/^\//, '');
    const slash = source.indexOf('/');
    const [srcBucket, srcKey] = [source.slice(0, slash), source.slice(slash + 1)];
    const srcPath = objectPath(this.#directory, srcBucket, srcKey);
    const size = await stat(srcPath).then(
      (s) => s.size,
      () => undefined,
    );
    if (size === undefined) return sendError(res, 404, 'NoSuchKey', `no object ${source}`);
    const range = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers['x-amz-copy-source-range'] ?? ''));
    const [first, last] = range ? [Number(range[1]), Number(range[2])] : [0, size - 1];
    if (first > last || last >= size) {
      return sendError(
        res,
        400,
        'InvalidRange',
        `range ${first}-${last} is outside ${source} (${size} bytes)`,
      );
    }
    const partPath = join(this.#uploadDir(bucket, uploadId), String(Number(query.get('partNumber'))));
    const md5 = createHash('md5');
    await pipeline(
      createReadStream(srcPath, { start: first, end: last }),
      new Transform({
        transform(chunk, _enc, done) {
          md5.update(chunk);
          done(null, chunk);
        },
      }),
      createWriteStream(partPath),
    );
    const etag = md5.digest('hex');
    await writeFile(`${partPath}.md5`, etag);
    sendXml(
      res,
      200,
      `<CopyPartResult><LastModified>${new Date().toISOString()}</LastModified><ETag>"${etag}"</ETag></CopyPartResult>`,
    );
  }
}
