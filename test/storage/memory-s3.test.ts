/**
 * The in-memory S3 server (test/support/memory-s3.ts), driven by the real AWS SDK v3 and
 * @aws-sdk/lib-storage: other suites and the scale figures take its answers as S3's.
 */
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Storage, scanListPage } from '../../src/storage/s3';
import { compareKeys, faultTimes, type MemoryS3, startMemoryS3 } from '../support/memory-s3';

const BUCKET = 'memory';
const MiB = 1024 * 1024;
let s3: MemoryS3;
/** The settings REFERENCE.md gives for s3rver: checksums only when required, so bodies go unframed. */
let plain: S3Client;

beforeAll(async () => {
  s3 = await startMemoryS3({ buckets: [BUCKET, 'big'] });
  plain = new S3Client({
    ...s3.clientConfig,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
});
afterAll(async () => {
  plain.destroy();
  await s3.stop();
});

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: Error & { $metadata?: { httpStatusCode?: number } }) => ({
      name: err.name,
      status: err.$metadata?.httpStatusCode,
    }),
  );

const text = async (key: string, range?: string, client = s3.client) => {
  const out = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: range }));
  return out.Body!.transformToString();
};

describe('objects', () => {
  it.each([
    ['the SDK default (aws-chunked body with a trailing checksum)', () => s3.client],
    ['checksums only when required (plain body)', () => plain],
  ])('stores and returns a streamed PutObject body byte for byte, with %s', async (_, client) => {
    const body = Buffer.alloc(3 * MiB + 17, 7);
    body.write('start');
    await client().send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'streamed.bin',
        Body: Readable.from([body.subarray(0, MiB), body.subarray(MiB)]),
        ContentLength: body.length,
        ContentType: 'application/x-test',
        Metadata: { origin: 'test' },
      }),
    );
    expect(s3.objectBytes(BUCKET, 'streamed.bin')!.equals(body)).toBe(true);
    const head = await client().send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'streamed.bin' }));
    expect(head).toMatchObject({
      ContentLength: body.length,
      ContentType: 'application/x-test',
      Metadata: { origin: 'test' },
    });
  });

  it.each([
    ['bytes=2-4', 'cde'],
    ['bytes=0-0', 'a'],
    ['bytes=7-', 'hij'],
    ['bytes=-2', 'ij'],
    ['bytes=8-100', 'ij'],
  ])('serves Range %s as S3 does', async (range, expected) => {
    await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'letters', Body: 'abcdefghij' }));
    expect(await text('letters', range)).toBe(expected);
  });

  it('answers a range past the end with 416 InvalidRange and a missing key with NoSuchKey / 404', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'short', Body: 'abc' }));
    expect(await failure(text('short', 'bytes=3-5'))).toEqual({ name: 'InvalidRange', status: 416 });
    expect(await failure(text('nothing-here'))).toEqual({ name: 'NoSuchKey', status: 404 });
    expect(
      await failure(s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'nothing-here' }))),
    ).toEqual({
      name: 'NotFound',
      status: 404,
    });
    expect(await failure(s3.client.send(new GetObjectCommand({ Bucket: 'no-bucket', Key: 'x' })))).toEqual({
      name: 'NoSuchBucket',
      status: 404,
    });
  });

  it('copies an object with CopyObject and deletes with DeleteObject and DeleteObjects', async () => {
    await s3.client.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'del/a', Body: 'A', Metadata: { m: '1' } }),
    );
    await s3.client.send(
      new CopyObjectCommand({ Bucket: BUCKET, Key: 'del/b', CopySource: `${BUCKET}/del/a` }),
    );
    await s3.client.send(
      new CopyObjectCommand({ Bucket: BUCKET, Key: 'del/c & d', CopySource: `${BUCKET}/del/a` }),
    );
    expect(await text('del/b')).toBe('A');
    expect((await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'del/b' }))).Metadata).toEqual({
      m: '1',
    });
    await s3.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'del/a' }));
    const out = await s3.client.send(
      new DeleteObjectsCommand({
        Bucket: BUCKET,
        Delete: { Objects: [{ Key: 'del/b' }, { Key: 'del/c & d' }] },
      }),
    );
    expect(out.Deleted?.map((d) => d.Key).sort()).toEqual(['del/b', 'del/c & d']);
    const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'del/' }));
    expect(listed.KeyCount).toBe(0);
  });
});

describe('conditional writes', () => {
  it('refuses PutObject with If-None-Match: * when the key exists: 412 PreconditionFailed, first body kept', async () => {
    const put = (body: string) =>
      s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'once', Body: body, IfNoneMatch: '*' }));
    await put('first');
    expect(await failure(put('second'))).toEqual({ name: 'PreconditionFailed', status: 412 });
    expect(await text('once')).toBe('first');
  });

  it('lets exactly one of 25 concurrent If-None-Match: * writers of one key win', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 25 }, (_, i) =>
        s3.client.send(
          new PutObjectCommand({ Bucket: BUCKET, Key: 'race', Body: `writer ${i}`, IfNoneMatch: '*' }),
        ),
      ),
    );
    const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(winners).toHaveLength(1);
    expect(
      results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.name),
    ).toEqual(Array(24).fill('PreconditionFailed'));
    expect(await text('race')).toBe(`writer ${winners[0]}`);
  });

  it('refuses CompleteMultipartUpload with If-None-Match: * when the key appeared meanwhile', async () => {
    const { UploadId } = await s3.client.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'mpu-once' }),
    );
    const part = await s3.client.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: 'mpu-once', UploadId, PartNumber: 1, Body: 'tail' }),
    );
    await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'mpu-once', Body: 'there first' }));
    const complete = s3.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: 'mpu-once',
        UploadId,
        IfNoneMatch: '*',
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
      }),
    );
    expect(await failure(complete)).toEqual({ name: 'PreconditionFailed', status: 412 });
    expect(await text('mpu-once')).toBe('there first');
  });
});

describe('listing', () => {
  // Astral characters (surrogates in UTF-16) sort after U+FFFD in UTF-8 byte order, before it in UTF-16.
  const keys = ['a', 'a-b', 'a/x', 'a/y/z', 'a0', 'b\uFFFD', 'b😀', 'c/d/e', 'c/f'];
  beforeAll(() =>
    s3.seed(
      'big',
      keys.map((k) => [`list/${k}`, k] as const),
    ),
  );

  it('sorts keys in UTF-8 byte order, as S3 lists them', () => {
    const byBytes = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect([...keys].sort(compareKeys)).toEqual(byBytes);
  });

  it.each([1, 2, 3, 1000])('pages with max-keys %i, prefix and delimiter as S3 does', async (maxKeys) => {
    const seen: string[] = [];
    for await (const page of paginateListObjectsV2(
      { client: s3.client, pageSize: maxKeys },
      { Bucket: 'big', Prefix: 'list/', Delimiter: '/' },
    )) {
      expect((page.Contents?.length ?? 0) + (page.CommonPrefixes?.length ?? 0)).toBeLessThanOrEqual(maxKeys);
      for (const c of page.Contents ?? []) seen.push(c.Key!);
      for (const p of page.CommonPrefixes ?? []) seen.push(p.Prefix!);
    }
    expect(seen.sort(compareKeys)).toEqual([
      'list/a',
      'list/a-b',
      'list/a/',
      'list/a0',
      'list/b\uFFFD',
      'list/b😀',
      'list/c/',
    ]);
  });

  it('starts after start-after, and returns sizes and ETags', async () => {
    const out = await s3.client.send(
      new ListObjectsV2Command({ Bucket: 'big', Prefix: 'list/', StartAfter: 'list/a0' }),
    );
    expect(out.Contents?.map((c) => c.Key)).toEqual(['list/b\uFFFD', 'list/b😀', 'list/c/d/e', 'list/c/f']);
    expect(out.Contents?.[3]).toMatchObject({ Size: 3, ETag: expect.stringMatching(/^"[0-9a-f]{32}"$/) });
  });

  it('lists keys written and deleted through the API between pages', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'churn/2', Body: '2' }));
    await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'churn/4', Body: '4' }));
    const first = await s3.client.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'churn/', MaxKeys: 1 }),
    );
    await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'churn/3', Body: '3' }));
    await s3.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'churn/4' }));
    const rest = await s3.client.send(
      new ListObjectsV2Command({
        Bucket: BUCKET,
        Prefix: 'churn/',
        ContinuationToken: first.NextContinuationToken,
      }),
    );
    expect([...first.Contents!, ...rest.Contents!].map((c) => c.Key)).toEqual(['churn/2', 'churn/3']);
  });

  it('serves a page deep into 1,000,000 keys without walking to it', async () => {
    const started = performance.now();
    s3.seed(
      'big',
      (function* () {
        for (let i = 0; i < 1_000_000; i++)
          yield [`million/${String(i).padStart(7, '0')}`, { size: 1024 }] as const;
      })(),
    );
    const out = await s3.client.send(
      new ListObjectsV2Command({ Bucket: 'big', Prefix: 'million/', StartAfter: 'million/0999000' }),
    );
    expect(out.KeyCount).toBe(999);
    expect(out.Contents?.[0]).toMatchObject({ Key: 'million/0999001', Size: 1024 });
    const timed = performance.now();
    for (let i = 0; i < 20; i++) {
      await s3.client.send(
        new ListObjectsV2Command({ Bucket: 'big', Prefix: 'million/', StartAfter: `million/0${i}00000` }),
      );
    }
    // 20 full pages: binary search, then 1,000 entries of XML each.
    expect(performance.now() - timed).toBeLessThan(5_000);
    expect(performance.now() - started).toBeLessThan(30_000);
  });
});

describe('checksums', () => {
  it('answers BadDigest to a body whose x-amz-checksum-crc32 header does not match it, and stores nothing', async () => {
    const body = Buffer.from('the bytes that were meant');
    const crc = (b: Buffer) => {
      const out = Buffer.alloc(4);
      out.writeUInt32BE(crc32(b));
      return out.toString('base64');
    };
    const put = (ChecksumCRC32: string) =>
      plain.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'crc.txt', Body: body, ChecksumCRC32 }));
    expect(await failure(put(crc(Buffer.from('other bytes'))))).toEqual({ name: 'BadDigest', status: 400 });
    expect(s3.objectBytes(BUCKET, 'crc.txt')).toBeUndefined();
    await put(crc(body));
    expect(s3.objectBytes(BUCKET, 'crc.txt')!.equals(body)).toBe(true);
  });
});

describe('multipart', () => {
  it('completes a lib-storage Upload of 12 MiB in 5 MiB parts byte for byte', async () => {
    const body = Buffer.alloc(12 * MiB);
    for (let i = 0; i < body.length; i += 4096) body.writeUInt32LE(i, i);
    await new Upload({
      client: s3.client,
      params: { Bucket: BUCKET, Key: 'multi.bin', Body: Readable.from([body]) },
      partSize: 5 * MiB,
      queueSize: 3,
    }).done();
    expect(s3.objectBytes(BUCKET, 'multi.bin')!.equals(body)).toBe(true);
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'multi.bin' }));
    expect(head.ETag).toMatch(/^"[0-9a-f]{32}-3"$/);
    expect(await text('multi.bin', `bytes=${5 * MiB - 2}-${5 * MiB + 1}`)).toBe(
      body.subarray(5 * MiB - 2, 5 * MiB + 2).toString(),
    );
  });

  it('lists uploads and parts, aborts an upload, and answers NoSuchUpload afterwards', async () => {
    const upload = async (key: string) =>
      (await s3.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }))).UploadId!;
    const ids = [await upload('mp/b'), await upload('mp/a'), await upload('mp/a')];
    await s3.client.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: 'mp/b', UploadId: ids[0], PartNumber: 2, Body: 'xy' }),
    );
    const parts = await s3.client.send(
      new ListPartsCommand({ Bucket: BUCKET, Key: 'mp/b', UploadId: ids[0] }),
    );
    expect(parts.Parts).toMatchObject([{ PartNumber: 2, Size: 2 }]);

    const first = await s3.client.send(
      new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: 'mp/', MaxUploads: 2 }),
    );
    expect(first.IsTruncated).toBe(true);
    const rest = await s3.client.send(
      new ListMultipartUploadsCommand({
        Bucket: BUCKET,
        Prefix: 'mp/',
        KeyMarker: first.NextKeyMarker,
        UploadIdMarker: first.NextUploadIdMarker,
      }),
    );
    const all = [...first.Uploads!, ...rest.Uploads!];
    expect(all.map((u) => u.Key)).toEqual(['mp/a', 'mp/a', 'mp/b']);
    expect(new Set(all.map((u) => u.UploadId))).toEqual(new Set(ids));

    for (const u of all) {
      await s3.client.send(
        new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: u.Key, UploadId: u.UploadId }),
      );
    }
    expect(s3.incompleteUploads(BUCKET, 'mp/')).toBe(0);
    const late = s3.client.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: 'mp/b', UploadId: ids[0], PartNumber: 1, Body: 'late' }),
    );
    expect(await failure(late)).toEqual({ name: 'NoSuchUpload', status: 404 });
  });

  it('copies byte ranges of objects into parts with UploadPartCopy', async () => {
    const source = Buffer.alloc(6 * MiB, 'a');
    source.write('MIDDLE', 5 * MiB);
    await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'src', Body: source }));
    const key = 'copied';
    const { UploadId } = await s3.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
    const p1 = await s3.client.send(
      new UploadPartCopyCommand({
        Bucket: BUCKET,
        Key: key,
        UploadId,
        PartNumber: 1,
        CopySource: `${BUCKET}/src`,
        CopySourceRange: `bytes=0-${5 * MiB - 1}`,
      }),
    );
    const p2 = await s3.client.send(
      new UploadPartCopyCommand({
        Bucket: BUCKET,
        Key: key,
        UploadId,
        PartNumber: 2,
        CopySource: `${BUCKET}/src`,
        CopySourceRange: `bytes=${5 * MiB}-${5 * MiB + 5}`,
      }),
    );
    await s3.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: key,
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: p1.CopyPartResult!.ETag },
            { PartNumber: 2, ETag: p2.CopyPartResult!.ETag },
          ],
        },
      }),
    );
    expect(
      s3
        .objectBytes(BUCKET, key)!
        .equals(Buffer.concat([source.subarray(0, 5 * MiB), Buffer.from('MIDDLE')])),
    ).toBe(true);
  });

  it('refuses to complete with a part under 5 MiB that is not the last: EntityTooSmall', async () => {
    const key = 'small-parts';
    const { UploadId } = await s3.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
    const parts = [];
    for (const n of [1, 2]) {
      const p = await s3.client.send(
        new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: n, Body: 'x' }),
      );
      parts.push({ PartNumber: n, ETag: p.ETag });
    }
    const complete = s3.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
    expect(await failure(complete)).toEqual({ name: 'EntityTooSmall', status: 400 });
  });
});

describe('S3Storage against it', () => {
  it('lists, concatenates server-side, and finds and aborts incomplete uploads', async () => {
    const { storage } = s3;
    const a = Buffer.alloc(5 * MiB, 1);
    await storage.put(`s3://${BUCKET}/st/a`, a);
    await storage.put(`s3://${BUCKET}/st/b`, 'tail');
    await storage.concat([`s3://${BUCKET}/st/a`, `s3://${BUCKET}/st/b`], `s3://${BUCKET}/st/ab`);
    expect(s3.objectBytes(BUCKET, 'st/ab')!.equals(Buffer.concat([a, Buffer.from('tail')]))).toBe(true);
    const listed = [];
    for await (const o of storage.list(`s3://${BUCKET}/st/`)) listed.push([o.uri, o.size]);
    expect(listed).toEqual([
      [`s3://${BUCKET}/st/a`, a.length],
      [`s3://${BUCKET}/st/ab`, a.length + 4],
      [`s3://${BUCKET}/st/b`, 4],
    ]);
    await s3.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'st/left' }));
    const left = [];
    for await (const u of storage.listIncompleteUploads(`s3://${BUCKET}/st/`)) left.push(u);
    expect(left.map((u) => u.uri)).toEqual([`s3://${BUCKET}/st/left`]);
    await storage.abortIncompleteUpload(left[0]!);
    expect(s3.incompleteUploads(BUCKET, 'st/')).toBe(0);
  });

  it('lists keys with XML entities, astral characters and spaces through its page scanner, across pages', async () => {
    const keys = ['sc/a & b <c>', 'sc/d\'e"f', 'sc/g h', 'sc/😀', 'sc/\uFFFD'];
    s3.seed(
      BUCKET,
      keys.map((k, i) => [k, 'x'.repeat(i)] as const),
    );
    const small = new S3Storage({ client: s3.client, pageSize: 2 });
    const listed = [];
    for await (const o of small.list(`s3://${BUCKET}/sc/`))
      listed.push([o.uri.slice(`s3://${BUCKET}/`.length), o.size]);
    expect(listed).toEqual([...keys].sort(compareKeys).map((k) => [k, keys.indexOf(k)]));
  });

  it('deletes 2,500 objects with deleteMany in three DeleteObjects requests; missing keys are no error', async () => {
    s3.seed(
      BUCKET,
      Array.from({ length: 2_500 }, (_, i) => [`dm/${i}`, 'x'] as const),
    );
    const before = s3.requests.get('DeleteObjects') ?? 0;
    const uris = Array.from({ length: 2_500 }, (_, i) => `s3://${BUCKET}/dm/${i}`);
    await s3.storage.deleteMany([...uris, `s3://${BUCKET}/dm/never-there`]);
    expect((s3.requests.get('DeleteObjects') ?? 0) - before).toBe(3);
    expect(await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'dm/' }))).toMatchObject({
      KeyCount: 0,
    });
  });

  it('injects faults per request, and the SDK retries them', async () => {
    s3.faults.set(faultTimes(2, (r) => r.operation === 'GetObject', { status: 503 }));
    await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'flaky', Body: 'ok' }));
    expect(await text('flaky')).toBe('ok');
    expect(s3.faults.injected.status).toBe(2);
    s3.faults.clear();
  });
});

describe('scanListPage', () => {
  it('reads keys and sizes, decodes entities and URL encoding, and leaves the rest for the SDK', () => {
    const page = (encoding: string, key: string) =>
      `<ListBucketResult>${encoding}<IsTruncated>true</IsTruncated><Contents><Key>${key}</Key><Size>12</Size></Contents><NextContinuationToken>t</NextContinuationToken></ListBucketResult>`;
    expect(scanListPage(page('', 'a &amp; b&#x1F600;'))).toEqual({
      entries: [['a & b😀', 12]],
      rest: '<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken></ListBucketResult>',
    });
    expect(scanListPage(page('<EncodingType>url</EncodingType>', 'a+%26+b/%F0%9F%98%80')).entries).toEqual([
      ['a & b/😀', 12],
    ]);
  });
});
