/**
 * The loopback S3 harness itself: what it adds to s3rver must behave as S3 does, because other
 * suites take its answers as S3's.
 */
import { access } from 'node:fs/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { countIncompleteUploads, faultTimes, type S3Harness, startS3Server } from '../support/s3-server';

const BUCKET = 'harness';
let harness: S3Harness;
/** A client that does not retry, so each injected fault reaches the test as is. */
let once: S3Client;

beforeAll(async () => {
  harness = await startS3Server({ buckets: [BUCKET] });
  once = new S3Client({ ...harness.clientConfig, maxAttempts: 1 });
});
afterAll(async () => {
  once.destroy();
  await harness.stop();
});
afterEach(() => harness.faults.clear());

const rejection = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: Error & { $metadata?: { httpStatusCode?: number } }) => ({
      name: err.name,
      status: err.$metadata?.httpStatusCode,
    }),
  );

const startUpload = async (key: string) =>
  (await harness.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }))).UploadId!;

describe('lifecycle', () => {
  it('starts, serves, and stop() ends s3rver and removes its store', async () => {
    // No timing asserted: on a loaded CI machine start-up time says nothing about the harness.
    const h = await startS3Server({ buckets: ['quick'] });
    await h.storage.put('s3://quick/x', 'x');
    await h.stop();
    await h.stop(); // idempotent
    expect(() => process.kill(h.serverPid, 0)).toThrow(); // no such process
    await expect(access(h.directory)).rejects.toThrow();
  });

  it('creates buckets on demand', async () => {
    await harness.createBucket('made-later');
    await harness.storage.put('s3://made-later/k', 'v');
    expect((await harness.storage.readAll('s3://made-later/k')).toString()).toBe('v');
  });

  it('seeds objects straight into the store, readable through the API', async () => {
    await harness.seed(BUCKET, [
      ['seeded/a.txt', 'alpha'],
      ['seeded/deep/b.bin', Buffer.from([1, 2, 3])],
    ]);
    expect(await harness.storage.head(`s3://${BUCKET}/seeded/deep/b.bin`)).toMatchObject({
      uri: `s3://${BUCKET}/seeded/deep/b.bin`,
      size: 3,
    });
    expect((await harness.storage.readAll(`s3://${BUCKET}/seeded/a.txt`)).toString()).toBe('alpha');
  });

  it('passes requests through with their credentials, which s3rver checks', async () => {
    // s3rver checks the access key of a SigV4 request, not the signature itself.
    const stranger = new S3Client({
      ...harness.clientConfig,
      credentials: { accessKeyId: 'STRANGER', secretAccessKey: 'S3RVER' },
      maxAttempts: 1,
    });
    try {
      expect(
        await rejection(stranger.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'forged', Body: 'x' }))),
      ).toEqual({ name: 'InvalidAccessKeyId', status: 403 });
    } finally {
      stranger.destroy();
    }
  });
});

describe('ListObjectsV2', () => {
  it('pages with continuation tokens (s3rver needs the OpenSSL legacy provider for them)', async () => {
    for (const key of ['p/1', 'p/2', 'p/3', 'p/4', 'p/5']) {
      await harness.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));
    }
    const keys: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await harness.client.send(
        new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'p/', MaxKeys: 2, ContinuationToken: token }),
      );
      keys.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.NextContinuationToken;
      pages++;
    } while (token);
    expect(keys).toEqual(['p/1', 'p/2', 'p/3', 'p/4', 'p/5']);
    expect(pages).toBe(3);
  });
});

describe('multipart additions', () => {
  it('lists uploads under a prefix, with S3 cursor fields on truncated pages', async () => {
    const ids = [await startUpload('lm/a'), await startUpload('lm/b'), await startUpload('other/c')];
    const first = await harness.client.send(
      new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: 'lm/', MaxUploads: 1 }),
    );
    expect(first.Uploads?.map((u) => [u.Key, u.UploadId])).toEqual([['lm/a', ids[0]]]);
    expect(first).toMatchObject({ IsTruncated: true, NextKeyMarker: 'lm/a', NextUploadIdMarker: ids[0] });
    expect(first.Uploads?.[0]?.Initiated).toBeInstanceOf(Date);
    const second = await harness.client.send(
      new ListMultipartUploadsCommand({
        Bucket: BUCKET,
        Prefix: 'lm/',
        KeyMarker: first.NextKeyMarker,
        UploadIdMarker: first.NextUploadIdMarker,
      }),
    );
    expect(second.Uploads?.map((u) => u.Key)).toEqual(['lm/b']);
    expect(second.IsTruncated).toBe(false);
    for (const [i, key] of ['lm/a', 'lm/b', 'other/c'].entries()) {
      await harness.client.send(
        new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: ids[i] }),
      );
    }
  });

  it('answers NoSuchBucket for the uploads of a missing bucket', async () => {
    expect(await rejection(once.send(new ListMultipartUploadsCommand({ Bucket: 'no-such-bucket' })))).toEqual(
      {
        name: 'NoSuchBucket',
        status: 404,
      },
    );
  });

  it('aborts an upload once; after that it is NoSuchUpload for abort, parts and complete alike', async () => {
    const before = await countIncompleteUploads(harness, BUCKET);
    const uploadId = await startUpload('ab/k');
    await harness.client.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: 'ab/k', UploadId: uploadId, PartNumber: 1, Body: 'p1' }),
    );
    expect(await countIncompleteUploads(harness, BUCKET)).toBe(before + 1);

    await harness.client.send(
      new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'ab/k', UploadId: uploadId }),
    );
    expect(await countIncompleteUploads(harness, BUCKET)).toBe(before);
    const again = { Bucket: BUCKET, Key: 'ab/k', UploadId: uploadId };
    expect(await rejection(once.send(new AbortMultipartUploadCommand(again)))).toEqual({
      name: 'NoSuchUpload',
      status: 404,
    });
    expect(
      await rejection(once.send(new UploadPartCommand({ ...again, PartNumber: 2, Body: 'late' }))),
    ).toEqual({
      name: 'NoSuchUpload',
      status: 404,
    });
    expect(
      await rejection(
        once.send(
          new CompleteMultipartUploadCommand({
            ...again,
            MultipartUpload: { Parts: [{ PartNumber: 1, ETag: 'x' }] },
          }),
        ),
      ),
    ).toEqual({ name: 'NoSuchUpload', status: 404 });
    // s3rver alone would have recreated the upload's folder for the late part.
    expect(await countIncompleteUploads(harness, BUCKET)).toBe(before);
  });

  it('refuses to abort an upload id under another key', async () => {
    const uploadId = await startUpload('mine');
    expect(
      await rejection(
        once.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'theirs', UploadId: uploadId })),
      ),
    ).toMatchObject({ name: 'NoSuchUpload' });
    await harness.client.send(
      new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'mine', UploadId: uploadId }),
    );
  });

  it('leaves UploadPartCopy unimplemented by default, as s3rver does (501 NotImplemented)', async () => {
    await harness.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'copy-src', Body: 'x' }));
    const uploadId = await startUpload('copy-dst');
    expect(
      await rejection(
        once.send(
          new UploadPartCopyCommand({
            Bucket: BUCKET,
            Key: 'copy-dst',
            UploadId: uploadId,
            PartNumber: 1,
            CopySource: `${BUCKET}/copy-src`,
          }),
        ),
      ),
    ).toEqual({ name: 'NotImplemented', status: 501 });
    await harness.client.send(
      new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'copy-dst', UploadId: uploadId }),
    );
  });
});

describe('faults', () => {
  const get = (key: string) => once.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));

  beforeAll(async () => {
    await harness.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'f', Body: 'fine' }));
  });

  it('answers 503 SlowDown and 500 InternalError as S3 errors, or a code of the rule’s choosing', async () => {
    harness.faults.set((r) => (r.key === 'f' ? { status: 503 } : undefined));
    expect(await rejection(get('f'))).toEqual({ name: 'SlowDown', status: 503 });
    harness.faults.set(() => ({ status: 500 }));
    expect(await rejection(get('f'))).toEqual({ name: 'InternalError', status: 500 });
    harness.faults.set(() => ({ status: 503, code: 'ServiceUnavailable' }));
    expect(await rejection(get('f'))).toEqual({ name: 'ServiceUnavailable', status: 503 });
    expect(harness.faults.injected).toEqual({ status: 3, stall: 0, total: 3 });
  });

  it('tells the rule the operation, key and query of each request', async () => {
    const seen: string[] = [];
    harness.faults.set((r) => {
      seen.push(`${r.operation} ${r.method} ${r.bucket}/${r.key} ${r.query.has('uploadId')}`);
      return undefined;
    });
    const uploadId = await startUpload('seen');
    await harness.client.send(
      new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'seen', UploadId: uploadId }),
    );
    expect(seen).toEqual([
      `CreateMultipartUpload POST ${BUCKET}/seen false`,
      `AbortMultipartUpload DELETE ${BUCKET}/seen true`,
    ]);
    expect(harness.faults.injected.total).toBe(0); // observing is not injecting
  });

  it('stalls a request, then serves it normally', async () => {
    harness.faults.set(faultTimes(1, (r) => r.operation === 'GetObject', { stallMs: 250 }));
    const started = performance.now();
    const out = await get('f');
    expect(await out.Body!.transformToString()).toBe('fine');
    expect(performance.now() - started).toBeGreaterThanOrEqual(240);
    expect(harness.faults.injected.stall).toBe(1);
  });

  it('lets the SDK retry past a fault that happens once (the standard retry mode)', async () => {
    harness.faults.set(faultTimes(1, (r) => r.operation === 'GetObject', { status: 503 }));
    const out = await harness.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'f' }));
    expect(await out.Body!.transformToString()).toBe('fine');
    expect(out.$metadata.attempts).toBe(2);
    expect(harness.faults.injected.status).toBe(1);
  });

  it('clear() removes the rule and zeroes the counters', async () => {
    harness.faults.set(() => ({ status: 500 }));
    await rejection(get('f'));
    harness.faults.clear();
    expect(harness.faults.injected).toEqual({ status: 0, stall: 0, total: 0 });
    expect(await (await get('f')).Body!.transformToString()).toBe('fine');
  });
});
