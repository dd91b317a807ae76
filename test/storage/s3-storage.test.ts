/**
 * S3Storage specifics, with the real SDK against the loopback harness: paging, multipart writer
 * teardown while parts are in flight, concat's two paths, SSE-KMS on the wire, retries.
 */
import { CreateMultipartUploadCommand } from '@aws-sdk/client-s3';
import http from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  DEFAULT_MAX_ATTEMPTS,
  isLoopbackHost,
  MIN_UPLOAD_PART_SIZE,
  partSizeFor,
  planCopyParts,
  S3_LIMITS,
  S3Storage,
  s3ClientConfigFromEnv,
} from '../../src/storage/s3';
import { collect, eventually, MiB, randomChunks, randomData, toArray } from '../support/bytes';
import {
  countIncompleteUploads,
  type FaultRequest,
  faultTimes,
  type S3Harness,
  startS3Server,
} from '../support/s3-server';

const BUCKET = 'storage-test';
const GiB = 1024 * MiB;

let harness: S3Harness;
let storage: S3Storage;
let prefixes = 0;
const fresh = () => `s3://${BUCKET}/t${++prefixes}/`;

beforeAll(async () => {
  harness = await startS3Server({ buckets: [BUCKET] });
  storage = harness.storage;
});
afterAll(() => harness.stop());
afterEach(() => harness.faults.clear());

/** Records every request the SDK sends, through the fault hook, without changing any. */
function recordRequests(): FaultRequest[] {
  const seen: FaultRequest[] = [];
  harness.faults.set((request) => {
    seen.push(request);
    return undefined;
  });
  return seen;
}

describe('list', () => {
  it('pages through more than 1000 keys (ListObjectsV2 continuation tokens)', async () => {
    const base = fresh();
    const keys = Array.from({ length: 1005 }, (_, i) => `k${String(i).padStart(4, '0')}`);
    await harness.seed(
      BUCKET,
      keys.map((key) => [`${base.slice(`s3://${BUCKET}/`.length)}${key}`, key] as const),
    );
    const requests = recordRequests();
    const listed = await toArray(storage.list(base));
    expect(listed.map((o) => o.uri)).toEqual(keys.map((key) => base + key));
    expect(listed[1004]).toEqual({ uri: `${base}k1004`, size: 5 });
    expect(requests.filter((r) => r.operation === 'ListObjectsV2')).toHaveLength(2);
  });
});

describe('createWriter', () => {
  it('sends SSE-KMS headers on the multipart upload when kmsKeyId is set', async () => {
    const uri = `${fresh()}secret.bin`;
    const requests = recordRequests();
    const writer = storage.createWriter(uri, { kmsKeyId: 'alias/batch-output', contentType: 'text/csv' });
    await writer.write(randomData(MIN_UPLOAD_PART_SIZE + 1));
    await writer.complete();
    const create = requests.find((r) => r.operation === 'CreateMultipartUpload');
    expect(create?.headers['x-amz-server-side-encryption']).toBe('aws:kms');
    expect(create?.headers['x-amz-server-side-encryption-aws-kms-key-id']).toBe('alias/batch-output');
    expect(create?.headers['content-type']).toBe('text/csv');
  });

  it('sends SSE-KMS headers on put', async () => {
    const requests = recordRequests();
    await storage.put(`${fresh()}small`, 'x', { kmsKeyId: 'key-1' });
    const put = requests.find((r) => r.operation === 'PutObject');
    expect(put?.headers['x-amz-server-side-encryption-aws-kms-key-id']).toBe('key-1');
  });

  it('abort while parts are in flight waits for them and leaves no object and no upload', async () => {
    const uri = `${fresh()}in-flight.bin`;
    const STALL_MS = 300;
    // Every part upload is held by the server, so abort() surely comes while parts are in flight.
    const arrivals: { operation: string; at: number }[] = [];
    harness.faults.set((r) => {
      arrivals.push({ operation: r.operation, at: performance.now() });
      return r.operation === 'UploadPart' ? { stallMs: STALL_MS } : undefined;
    });
    const writer = storage.createWriter(uri);
    const writing = (async () => {
      for (const chunk of randomChunks(randomData(40 * MiB), MiB, 3)) await writer.write(chunk);
    })().then(
      () => undefined,
      (err: Error) => err,
    );
    await eventually(async () => harness.faults.injected.stall >= 2, 'two parts to be in flight');
    await writer.abort();
    const writeError = await writing;
    // The producer was blocked on backpressure (40 MiB exceeds what the writer buffers): it is released.
    expect(writeError?.message).toMatch(/aborted/);
    expect(await storage.head(uri)).toBeUndefined();
    expect(await countIncompleteUploads(harness, BUCKET)).toBe(0);
    // The writer itself sent AbortMultipartUpload only after its parts were answered, so no part can
    // land after the abort (on S3 such a part would keep its storage).
    const lastPart = Math.max(...arrivals.filter((a) => a.operation === 'UploadPart').map((a) => a.at));
    const abort = arrivals.find((a) => a.operation === 'AbortMultipartUpload');
    expect(abort!.at).toBeGreaterThanOrEqual(lastPart + STALL_MS - 5);
  });

  it('a second abort() while the first tears down waits for it: no upload is left when it returns', async () => {
    const uri = `${fresh()}aborted-twice.bin`;
    harness.faults.set((r) => (r.operation === 'UploadPart' ? { stallMs: 300 } : undefined));
    const writer = storage.createWriter(uri);
    await writer.write(randomData(MIN_UPLOAD_PART_SIZE + MiB)); // part 1 goes out
    await eventually(async () => harness.faults.injected.stall >= 1, 'part 1 to be in flight');
    const first = writer.abort();
    await writer.abort();
    expect(await countIncompleteUploads(harness, BUCKET)).toBe(0);
    await first;
  });

  it('fails complete when parts keep failing, and leaves no upload behind', async () => {
    const uri = `${fresh()}doomed.bin`;
    harness.faults.set((r) => (r.operation === 'UploadPart' ? { status: 500 } : undefined));
    const writer = storage.createWriter(uri);
    const outcome = (async () => {
      for (const chunk of randomChunks(randomData(20 * MiB), MiB, 5)) await writer.write(chunk);
      await writer.complete();
    })();
    await expect(outcome).rejects.toThrow(`upload to ${uri} failed`);
    expect(harness.faults.injected.status).toBeGreaterThanOrEqual(DEFAULT_MAX_ATTEMPTS);
    harness.faults.clear();
    await writer.abort(); // safe after a failure
    expect(await storage.head(uri)).toBeUndefined();
    expect(await countIncompleteUploads(harness, BUCKET)).toBe(0);
  });

  it('lets the caller reuse what it wrote as soon as the write resolves (releasesChunks)', async () => {
    const uri = `${fresh()}reused.bin`;
    const writer = storage.createWriter(uri);
    expect(writer.releasesChunks).toBe(true);
    // One buffer written again and again, overwritten after each write, as a pool of blocks is.
    const block = Buffer.alloc(64 * 1024);
    const expected: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      block.fill(i);
      await writer.writeMany!([block.subarray(0, 1000), block.subarray(1000, 40_000 + i)]);
      expected.push(Buffer.alloc(40_000 + i, i));
      block.fill(255);
    }
    await writer.complete();
    expect((await storage.readAll(uri)).equals(Buffer.concat(expected))).toBe(true);
  });

  it.each([
    { size: 0, operations: ['PutObject'] },
    { size: MIN_UPLOAD_PART_SIZE, operations: ['PutObject'] },
    {
      size: MIN_UPLOAD_PART_SIZE + 1,
      operations: ['CreateMultipartUpload', 'UploadPart', 'UploadPart', 'CompleteMultipartUpload'],
    },
  ])('writes $size bytes with $operations, byte for byte', async ({ size, operations }) => {
    const uri = `${fresh()}sized.bin`;
    const data = randomData(size);
    const requests = recordRequests();
    const writer = storage.createWriter(uri);
    for (const chunk of randomChunks(data, 3 * MiB, 7)) await writer.write(chunk);
    await writer.complete();
    expect(requests.map((r) => r.operation).sort()).toEqual([...operations].sort());
    expect((await storage.readAll(uri)).equals(data)).toBe(true);
  });

  it('sends every part with the CRC32 of its bytes and an unsigned payload, on an upload declared CRC32', async () => {
    const uri = `${fresh()}checksummed.bin`;
    const data = randomData(2 * MIN_UPLOAD_PART_SIZE + 12_345);
    const requests = recordRequests();
    const writer = storage.createWriter(uri, { kmsKeyId: 'key-2' });
    for (const chunk of randomChunks(data, MiB, 13)) await writer.write(chunk);
    await writer.complete();
    const create = requests.find((r) => r.operation === 'CreateMultipartUpload')!;
    expect(create.headers['x-amz-checksum-algorithm']).toBe('CRC32');
    expect(create.headers['x-amz-server-side-encryption-aws-kms-key-id']).toBe('key-2');
    const parts = requests.filter((r) => r.operation === 'UploadPart');
    expect(parts).toHaveLength(3);
    for (const part of parts) {
      const n = Number(part.query.get('partNumber'));
      const bytes = data.subarray((n - 1) * MIN_UPLOAD_PART_SIZE, n * MIN_UPLOAD_PART_SIZE);
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32(bytes));
      expect(part.headers['x-amz-checksum-crc32']).toBe(crc.toString('base64'));
      expect(part.headers['x-amz-content-sha256']).toBe('UNSIGNED-PAYLOAD');
    }
    expect((await storage.readAll(uri)).equals(data)).toBe(true);
  });

  it('copies each byte once into at most uploadQueueSize + 1 part buffers, reused part after part', async () => {
    const uri = `${fresh()}reused-parts.bin`;
    const data = randomData(6 * MIN_UPLOAD_PART_SIZE + 5);
    // A storage of its own: part buffers are shared by a storage's writers.
    const own = new S3Storage({ client: harness.client });
    const allocations = vi.spyOn(Buffer, 'allocUnsafeSlow');
    const joins = vi.spyOn(Buffer, 'concat');
    try {
      const writer = own.createWriter(uri);
      for (const chunk of randomChunks(data, MiB, 17)) await writer.writeMany!([chunk, Buffer.alloc(0)]);
      await writer.complete();
      const partBuffers = allocations.mock.calls.filter(([size]) => size === MIN_UPLOAD_PART_SIZE);
      // The default uploadQueueSize is 2: two parts in flight and one being filled.
      expect(partBuffers.length).toBeGreaterThanOrEqual(1);
      expect(partBuffers.length).toBeLessThanOrEqual(3);
      expect(joins.mock.calls.filter(([list]) => list.length > 1)).toEqual([]);
    } finally {
      allocations.mockRestore();
      joins.mockRestore();
    }
    expect((await storage.readAll(uri)).equals(data)).toBe(true);
  });

  it('shares whole-part buffers between writers: the next object reuses the last one’s, no new allocation', async () => {
    const own = new S3Storage({ client: harness.client });
    const write = async (name: string, data: Buffer) => {
      const writer = own.createWriter(`${fresh()}${name}`, { likelySize: data.length });
      for (const chunk of randomChunks(data, MiB, 5)) await writer.write(chunk);
      await writer.complete();
    };
    const first = randomData(2 * MIN_UPLOAD_PART_SIZE + 3);
    await write('first.bin', first);
    const allocations = vi.spyOn(Buffer, 'allocUnsafeSlow');
    try {
      // A multipart object and a one-part object likely to fill most of a part.
      await write('second.bin', randomData(2 * MIN_UPLOAD_PART_SIZE + 7));
      await write('third.bin', randomData(MIN_UPLOAD_PART_SIZE - 9));
      expect(allocations.mock.calls.filter(([size]) => size === MIN_UPLOAD_PART_SIZE)).toEqual([]);
    } finally {
      allocations.mockRestore();
    }
  });

  it('rejects an expected size beyond the largest S3 object', () => {
    expect(() => storage.createWriter(`${fresh()}huge`, { expectedSize: 6 * 1024 * GiB })).toThrow(/5 TiB/);
  });
});

describe('partSizeFor', () => {
  it.each([
    [undefined, 8 * MiB],
    [0, 8 * MiB],
    [80 * GiB, 9 * MiB], // 8.19 MiB rounded up to whole MiB
    [S3_LIMITS.maxObjectSize, 525 * MiB],
  ])('gives %s bytes parts of %s', (size, expected) => {
    expect(partSizeFor(size)).toBe(expected);
  });

  it('keeps every size up to 5 TiB within 10,000 parts of at most 5 GiB', () => {
    for (const size of [1, 78 * GiB, 78 * GiB + 1, 1024 * GiB, S3_LIMITS.maxObjectSize]) {
      const part = partSizeFor(size);
      expect(Math.ceil(size / part)).toBeLessThanOrEqual(S3_LIMITS.maxParts);
      expect(part).toBeLessThanOrEqual(S3_LIMITS.maxPartSize);
    }
  });
});

describe('planCopyParts', () => {
  const src = (key: string, size: number) => ({ uri: `s3://bkt/${key}`, size });

  it('refuses when a source other than the last is under 5 MiB', () => {
    expect(planCopyParts([src('a', 6 * MiB), src('b', MiB), src('c', 6 * MiB)])).toBeUndefined();
  });

  it('drops empty sources and lets the last part be small', () => {
    const parts = planCopyParts([src('a', 6 * MiB), src('e', 0), src('b', 10)]);
    expect(parts?.map((p) => [p.source.key, p.first, p.last])).toEqual([
      ['a', 0, 6 * MiB - 1],
      ['b', 0, 9],
    ]);
  });

  it('cuts a source above 5 GiB into contiguous ranges within the part limit', () => {
    const size = 12 * GiB + 3;
    const parts = planCopyParts([src('big', size)])!;
    expect(parts).toHaveLength(3);
    expect(parts[0]!.first).toBe(0);
    expect(parts.at(-1)!.last).toBe(size - 1);
    for (let i = 1; i < parts.length; i++) expect(parts[i]!.first).toBe(parts[i - 1]!.last + 1);
    for (const p of parts) expect(p.last - p.first + 1).toBeLessThanOrEqual(S3_LIMITS.maxPartSize);
  });
});

describe('concat', () => {
  it('falls back to a streamed copy when the server answers UploadPartCopy with NotImplemented', async () => {
    const base = fresh();
    const datas = [randomData(5 * MiB), randomData(5 * MiB + 7), randomData(1000)];
    const sources = datas.map((_, i) => `${base}shard-${i}`);
    await Promise.all(sources.map((uri, i) => storage.put(uri, datas[i]!)));
    const fallbackStorage = new S3Storage({ client: harness.client });
    const requests = recordRequests();

    await fallbackStorage.concat(sources, `${base}joined`);
    expect((await storage.readAll(`${base}joined`)).equals(Buffer.concat(datas))).toBe(true);
    expect(requests.filter((r) => r.operation === 'UploadPartCopy').length).toBeGreaterThan(0);
    expect(await countIncompleteUploads(harness, BUCKET)).toBe(0); // the copy's upload was aborted

    // The storage remembers: a second concat goes straight to streaming.
    requests.length = 0;
    await fallbackStorage.concat(sources, `${base}joined-again`);
    expect(requests.filter((r) => r.operation === 'UploadPartCopy')).toEqual([]);
    expect((await storage.readAll(`${base}joined-again`)).equals(Buffer.concat(datas))).toBe(true);
  });

  it('streams small sources without trying a server-side copy', async () => {
    const base = fresh();
    await storage.put(`${base}a`, 'a'.repeat(10));
    await storage.put(`${base}b`, 'b'.repeat(10));
    const requests = recordRequests();
    await new S3Storage({ client: harness.client }).concat([`${base}a`, `${base}b`], `${base}ab`);
    expect(requests.filter((r) => r.operation === 'UploadPartCopy')).toEqual([]);
    expect((await storage.readAll(`${base}ab`)).toString()).toBe('a'.repeat(10) + 'b'.repeat(10));
  });

  describe('against a server with UploadPartCopy', () => {
    let copying: S3Harness;
    beforeAll(async () => {
      copying = await startS3Server({ buckets: [BUCKET], uploadPartCopy: true });
    });
    afterAll(() => copying.stop());

    it('copies server-side, in order, byte for byte, with no data through the client', async () => {
      const base = `s3://${BUCKET}/copy/`;
      const datas = [randomData(5 * MiB), randomData(6 * MiB + 1), randomData(12345)];
      const sources = datas.map((_, i) => `${base}shard-${i}`);
      await Promise.all(sources.map((uri, i) => copying.storage.put(uri, datas[i]!)));
      const requests: FaultRequest[] = [];
      copying.faults.set((r) => {
        requests.push(r);
        return undefined;
      });
      await copying.storage.concat(sources, `${base}joined`, { kmsKeyId: 'alias/out' });
      const seen = requests.map((r) => r.operation);
      expect(seen.filter((op) => op === 'UploadPartCopy')).toHaveLength(3);
      expect(seen).not.toContain('GetObject');
      expect(seen).not.toContain('UploadPart');
      const create = requests.find((r) => r.operation === 'CreateMultipartUpload');
      expect(create?.headers['x-amz-server-side-encryption-aws-kms-key-id']).toBe('alias/out');
      expect((await copying.storage.readAll(`${base}joined`)).equals(Buffer.concat(datas))).toBe(true);
      expect(await countIncompleteUploads(copying, BUCKET)).toBe(0);
    });
  });
});

describe('incomplete uploads', () => {
  it('pages through ListMultipartUploads with its (key, upload id) cursor', async () => {
    const base = fresh();
    const keys = ['a', 'b', 'b', 'c', 'd'].map((k) => `t-uploads/${k}`);
    const prefix = base.slice(`s3://${BUCKET}/`.length);
    for (const key of keys) {
      await harness.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: prefix + key }));
    }
    const smallPages = new S3Storage({ client: harness.client, pageSize: 2 });
    const requests = recordRequests();
    const uploads = await toArray(smallPages.listIncompleteUploads(base));
    expect(uploads.map((u) => u.uri)).toEqual(keys.map((k) => base + k));
    expect(new Set(uploads.map((u) => u.uploadId)).size).toBe(5);
    expect(requests.filter((r) => r.operation === 'ListMultipartUploads')).toHaveLength(3);

    for (const upload of uploads) await smallPages.abortIncompleteUpload(upload);
    for (const upload of uploads) await smallPages.abortIncompleteUpload(upload); // a second cleanup run
    expect(await toArray(smallPages.listIncompleteUploads(base))).toEqual([]);
  });
});

describe('retries', () => {
  it('retries a 503 SlowDown and succeeds', async () => {
    const uri = `${fresh()}retried`;
    await storage.put(uri, 'payload');
    harness.faults.set(faultTimes(1, (r) => r.operation === 'GetObject', { status: 503 }));
    expect((await storage.readAll(uri)).toString()).toBe('payload');
    expect(harness.faults.injected).toEqual({ status: 1, stall: 0, total: 1 });
  });

  it('retries a part upload that failed with 500, and the object is still exact', async () => {
    const uri = `${fresh()}part-retried`;
    const data = randomData(17 * MiB);
    harness.faults.set(faultTimes(2, (r) => r.operation === 'UploadPart', { status: 500 }));
    const writer = storage.createWriter(uri);
    for (const chunk of randomChunks(data, 2 * MiB, 11)) await writer.write(chunk);
    await writer.complete();
    expect(harness.faults.injected.status).toBe(2);
    expect((await storage.readAll(uri)).equals(data)).toBe(true);
  });

  it('gives up on a silent socket after socketTimeoutMs and retries', async () => {
    const uri = `${fresh()}stalled`;
    await storage.put(uri, 'late but whole');
    const { endpoint, region, credentials } = harness.clientConfig;
    const impatient = new S3Storage({
      ...s3ClientConfigFromEnv({ AWS_ENDPOINT_URL_S3: endpoint as string, AWS_REGION: region as string }),
      credentials,
      socketTimeoutMs: 200,
    });
    try {
      // A stall far longer than the timeout: finishing well before it ends proves the retry, with room
      // for a loaded machine.
      harness.faults.set(faultTimes(1, (r) => r.operation === 'GetObject', { stallMs: 10_000 }));
      const started = Date.now();
      expect((await impatient.readAll(uri)).toString()).toBe('late but whole');
      expect(Date.now() - started).toBeLessThan(8_000);
      expect(harness.faults.injected.stall).toBe(1);
    } finally {
      impatient.destroy();
    }
  });

  describe('pooled reads with socketTimeoutMs 200', () => {
    let impatient: S3Storage;
    beforeAll(() => {
      const { endpoint, region, credentials } = harness.clientConfig;
      impatient = new S3Storage({
        ...s3ClientConfigFromEnv({ AWS_ENDPOINT_URL_S3: endpoint as string, AWS_REGION: region as string }),
        credentials,
        socketTimeoutMs: 200,
      });
    });
    afterAll(() => impatient.destroy());

    /** The body, read chunk by chunk with a pause after each, releasing what was read. */
    async function readSlowly(uri: string, pauseMs: number): Promise<Buffer> {
      const read = (await impatient.readPooled(uri))!;
      const copies: Buffer[] = [];
      let at = 0;
      for await (const chunk of read) {
        copies.push(Buffer.from(chunk));
        at += chunk.length;
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
        read.release(at);
      }
      return Buffer.concat(copies);
    }

    it('retries a GetObject whose answer does not come, as read does', async () => {
      const uri = `${fresh()}pooled-stalled`;
      const data = randomData(MiB);
      await storage.put(uri, data);
      harness.faults.set(faultTimes(1, (r) => r.operation === 'GetObject', { stallMs: 10_000 }));
      expect((await readSlowly(uri, 0)).equals(data)).toBe(true);
      expect(harness.faults.injected.stall).toBe(1);
    });

    it('keeps reading for a caller slower than the timeout: a connection paused for it is not silent', async () => {
      const uri = `${fresh()}pooled-slow-caller`;
      const data = randomData(2 * MiB);
      await storage.put(uri, data);
      expect((await readSlowly(uri, 300)).equals(data)).toBe(true);
    });

    it('reads one object after another on a kept-alive connection, byte for byte', async () => {
      const uris = [`${fresh()}a`, `${fresh()}b`, `${fresh()}c`];
      const bodies = uris.map((_, i) => randomData(100_000 + i));
      for (const [i, uri] of uris.entries()) await storage.put(uri, bodies[i]!);
      for (const [i, uri] of uris.entries()) expect((await readSlowly(uri, 0)).equals(bodies[i]!)).toBe(true);
    });
  });
});

describe('readPooled checksums', () => {
  /** A server answering every GET with `body` and the given x-amz-checksum-crc32. */
  async function serving(body: Buffer, checksum: string) {
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': body.length, 'x-amz-checksum-crc32': checksum });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const s3 = new S3Storage({
      ...s3ClientConfigFromEnv({
        AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      }),
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    return {
      read: async () => collect(Readable.from((await s3.readPooled(`s3://${BUCKET}/object`))!)),
      close: () => {
        s3.destroy();
        server.close();
      },
    };
  }
  const crcOf = (b: Buffer) => {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(crc32(b));
    return out.toString('base64');
  };

  it.each([
    ['reads a body that matches its x-amz-checksum-crc32', 'the right bytes', true],
    ['fails a body that does not', 'other bytes', false],
  ])('%s', async (_what, checksummed, matches) => {
    const body = randomData(600 * 1024);
    const server = await serving(body, crcOf(matches ? body : Buffer.from(checksummed)));
    try {
      if (matches) expect((await server.read()).equals(body)).toBe(true);
      else await expect(server.read()).rejects.toThrow(/x-amz-checksum-crc32/);
    } finally {
      server.close();
    }
  });
});

describe('s3ClientConfigFromEnv', () => {
  it('selects path style and WHEN_REQUIRED checksums for an S3-compatible endpoint', () => {
    expect(s3ClientConfigFromEnv({ AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:4568' })).toEqual({
      region: 'us-east-1',
      endpoint: 'http://127.0.0.1:4568',
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  });

  it('prefers AWS_ENDPOINT_URL_S3 over AWS_ENDPOINT_URL and keeps a given region', () => {
    const config = s3ClientConfigFromEnv({
      AWS_ENDPOINT_URL: 'http://general',
      AWS_ENDPOINT_URL_S3: 'http://s3-only',
      AWS_REGION: 'eu-west-1',
    });
    expect(config.endpoint).toBe('http://s3-only');
    expect(config.region).toBe('eu-west-1');
    expect(s3ClientConfigFromEnv({ AWS_ENDPOINT_URL: 'http://general' }).endpoint).toBe('http://general');
  });

  it('leaves AWS defaults alone when no endpoint is set', () => {
    expect(s3ClientConfigFromEnv({})).toEqual({});
    expect(s3ClientConfigFromEnv({ AWS_DEFAULT_REGION: 'us-west-2' })).toEqual({ region: 'us-west-2' });
  });

  it('builds a working client from the environment', async () => {
    const uri = `${fresh()}from-env`;
    const fromEnv = new S3Storage({
      ...s3ClientConfigFromEnv({ AWS_ENDPOINT_URL_S3: harness.endpoint }),
      credentials: harness.clientConfig.credentials,
    });
    try {
      const data = randomData(9 * MiB); // multipart: the streamed-body case that needs WHEN_REQUIRED
      const writer = fromEnv.createWriter(uri);
      for (const chunk of randomChunks(data, MiB, 2)) await writer.write(chunk);
      await writer.complete();
      expect((await fromEnv.readAll(uri)).equals(data)).toBe(true);
    } finally {
      fromEnv.destroy();
    }
  });
});

describe('readPooled error answers', () => {
  it('rejects a missing key at once with S3\u2019s own error, though the answer is chunked on a kept-alive connection (as S3 sends errors)', {
    timeout: 15_000,
  }, async () => {
    // Answered the way S3 answers: no Content-Length, chunked, the connection kept open. Read to
    // its close, this would wait for the 60 s socket timeout and hand the SDK the chunk framing.
    const server = http.createServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'application/xml', 'x-amz-request-id': 'test' });
      res.write('<?xml version="1.0" encoding="UTF-8"?>\n');
      res.end('<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>');
    });
    server.keepAliveTimeout = 120_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const s3 = new S3Storage({
      ...s3ClientConfigFromEnv({
        AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      }),
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    try {
      const error = await s3.readPooled(`s3://${BUCKET}/missing`).then(
        () => undefined,
        (e: Error & { cause?: { name?: string } }) => e,
      );
      expect(error?.name).toBe('ObjectNotFoundError');
      expect(error?.cause?.name).toBe('NoSuchKey');
    } finally {
      s3.destroy();
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('payload signing', () => {
  it('isLoopbackHost: 127.0.0.0/8, ::1 and localhost only', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '[::1]', '::1'])
      expect(isLoopbackHost(host), host).toBe(true);
    for (const host of [
      '10.0.0.1',
      '192.0.2.2',
      's3.amazonaws.com',
      '[fd00::2]',
      '127.example.com',
      undefined,
    ])
      expect(isLoopbackHost(host), String(host)).toBe(false);
  });

  it('writes UNSIGNED-PAYLOAD only to a loopback address (or over https); over plain http to another host the payload is signed', async () => {
    const seen: Array<string | undefined> = [];
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        seen.push(req.headers['x-amz-content-sha256'] as string | undefined);
        res.writeHead(200, { etag: '"e"' });
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
    const port = (server.address() as AddressInfo).port;
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
    expect(external, 'a non-loopback IPv4 address on this machine').toBeDefined();
    const put = async (host: string) => {
      const s3 = new S3Storage({
        ...s3ClientConfigFromEnv({ AWS_ENDPOINT_URL_S3: `http://${host}:${port}` }),
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      });
      try {
        const writer = s3.createWriter(`s3://${BUCKET}/signed.txt`);
        await writer.write(Buffer.from('hello'));
        await writer.complete();
      } finally {
        s3.destroy();
      }
    };
    try {
      await put('127.0.0.1');
      await put(external!);
    } finally {
      server.closeAllConnections();
      server.close();
    }
    expect(seen).toEqual(['UNSIGNED-PAYLOAD', createHash('sha256').update('hello').digest('hex')]);
  });
});
