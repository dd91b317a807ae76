/**
 * The Storage contract, run against both implementations: S3Storage through the real SDK against
 * s3rver on loopback, and FileStorage on a temp folder. What a stage sees must not depend on where
 * its data lives.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ObjectNotFoundError, writeChunks } from '../../src/storage/common';
import { FileStorage } from '../../src/storage/file';
import type { PooledRead, Storage } from '../../src/storage/storage';
import { collect, eventually, MiB, randomChunks, randomData, toArray } from '../support/bytes';
import { type S3Harness, startS3Server } from '../support/s3-server';
import { makeTempDir, type TempDir } from '../support/tmp';

interface Backend {
  readonly name: string;
  start(): Promise<{ storage: Storage; root: string; stop(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'S3Storage (s3rver)',
    async start() {
      const harness: S3Harness = await startS3Server({ buckets: ['behaviour'] });
      return { storage: harness.storage, root: 's3://behaviour/', stop: harness.stop };
    },
  },
  {
    name: 'FileStorage',
    async start() {
      const dir: TempDir = await makeTempDir('file-storage');
      return { storage: new FileStorage(), root: dir.uri, stop: dir.remove };
    },
  },
];

describe.each(backends)('$name', (backend) => {
  let storage: Storage;
  let root: string;
  let stop: () => Promise<void>;
  let prefixes = 0;
  /** A fresh folder-like prefix per test, so tests never see each other's objects. */
  const fresh = () => `${root}t${++prefixes}/`;

  beforeAll(async () => {
    ({ storage, root, stop } = await backend.start());
  });
  afterAll(() => stop());

  it('reads back what put stored, and head reports its size and when it was written', async () => {
    const uri = `${fresh()}a.txt`;
    const before = Date.now() - 1000; // S3's Last-Modified has whole seconds
    await storage.put(uri, 'hello, world');
    expect((await storage.readAll(uri)).toString()).toBe('hello, world');
    const head = await storage.head(uri);
    expect(head).toMatchObject({ uri, size: 12 });
    expect(head?.lastModified?.getTime()).toBeGreaterThanOrEqual(before);
    expect(head?.lastModified?.getTime()).toBeLessThanOrEqual(Date.now());
  });

  it('put replaces an existing object', async () => {
    const uri = `${fresh()}a.txt`;
    await storage.put(uri, 'first version');
    await storage.put(uri, Buffer.from('second'));
    expect((await storage.readAll(uri)).toString()).toBe('second');
  });

  it('reports a missing object as undefined from head and ObjectNotFoundError from read and readAll', async () => {
    const uri = `${fresh()}missing`;
    expect(await storage.head(uri)).toBeUndefined();
    await expect(storage.read(uri)).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(storage.readAll(uri)).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(storage.read(uri, { start: 0, end: 0 })).rejects.toBeInstanceOf(ObjectNotFoundError);
  });

  it('stops a read stream when its AbortSignal fires', async () => {
    const uri = `${fresh()}data`;
    await storage.put(uri, randomData(4 * MiB));
    const controller = new AbortController();
    const stream = await storage.read(uri, undefined, controller.signal);
    controller.abort();
    await expect(collect(stream)).rejects.toThrow(/abort/i);
  });

  describe('ranged reads (end exclusive)', () => {
    const data = Buffer.from('0123456789');
    let uri: string;
    beforeAll(async () => {
      uri = `${fresh()}digits`;
      await storage.put(uri, data);
    });

    it.each([
      ['a middle range', 2, 5, '234'],
      ['the first byte', 0, 1, '0'],
      ['the last byte', 9, 10, '9'],
      ['the whole object', 0, 10, '0123456789'],
      ['a range ending past the object, clamped', 7, 50, '789'],
      ['an empty range', 4, 4, ''],
      ['an empty range at the very end', 10, 10, ''],
    ])('returns %s', async (_what, start, end, expected) => {
      expect((await collect(await storage.read(uri, { start, end }))).toString()).toBe(expected);
    });

    it('rejects a range that starts past the end of the object', async () => {
      await expect(storage.read(uri, { start: 10, end: 12 })).rejects.toThrow(RangeError);
    });

    it('rejects a malformed range before any I/O', async () => {
      await expect(storage.read(uri, { start: 5, end: 4 })).rejects.toThrow(/invalid byte range/);
      await expect(storage.read(uri, { start: -1, end: 4 })).rejects.toThrow(/invalid byte range/);
    });
  });

  describe('pooled reads (readPooled)', () => {
    /** Every chunk copied out, then released: as the packer does once nothing refers to it. */
    async function drain(read: PooledRead, from: number) {
      const copies: Buffer[] = [];
      const buffers = new Set<ArrayBufferLike>();
      let at = from;
      for await (const chunk of read) {
        copies.push(Buffer.from(chunk));
        buffers.add(chunk.buffer);
        at += chunk.length;
        read.release(at);
      }
      return { bytes: Buffer.concat(copies), buffers: buffers.size };
    }

    it('reads an object of many chunks byte for byte into a few buffers, reused once released', async () => {
      const uri = `${fresh()}pooled`;
      const data = randomData(5 * MiB + 123);
      await storage.put(uri, data);
      const read = await storage.readPooled!(uri);
      const { bytes, buffers } = await drain(read!, 0);
      expect(bytes.equals(data)).toBe(true);
      // 21 chunks of 256 KiB; the reader is one read ahead of a caller that releases each at once.
      expect(buffers).toBeLessThanOrEqual(4);
    });

    it.each([
      ['a middle range', 2, 5, '234'],
      ['the last byte', 9, 10, '9'],
      ['a range ending past the object, clamped', 7, 50, '789'],
    ])('reads %s', async (_what, start, end, expected) => {
      const uri = `${fresh()}digits`;
      await storage.put(uri, '0123456789');
      const read = await storage.readPooled!(uri, { start, end });
      expect((await drain(read!, start)).bytes.toString()).toBe(expected);
    });

    it('reads an object whose key needs escaping in a URL', async () => {
      const uri = `${fresh()}odd key ü+%&=?#.csv`;
      await storage.put(uri, 'odd but found');
      expect((await drain((await storage.readPooled!(uri))!, 0)).bytes.toString()).toBe('odd but found');
    });

    it('reads an empty object as no chunks', async () => {
      const uri = `${fresh()}empty`;
      await storage.put(uri, '');
      expect((await drain((await storage.readPooled!(uri))!, 0)).bytes.length).toBe(0);
    });

    it('fails as read does: a missing object, a range past the end', async () => {
      const uri = `${fresh()}short`;
      await storage.put(uri, 'abc');
      await expect(storage.readPooled!(`${fresh()}missing`)).rejects.toThrow(ObjectNotFoundError);
      await expect(storage.readPooled!(uri, { start: 3, end: 5 })).rejects.toThrow(RangeError);
    });

    it('stops when its AbortSignal fires', async () => {
      const uri = `${fresh()}aborted`;
      await storage.put(uri, randomData(4 * MiB));
      const controller = new AbortController();
      const read = (await storage.readPooled!(uri, undefined, controller.signal))!;
      const chunks = read[Symbol.asyncIterator]();
      await chunks.next();
      controller.abort();
      await expect(
        drain({ release: read.release.bind(read), [Symbol.asyncIterator]: () => chunks }, 0),
      ).rejects.toThrow(/abort/i);
    });
  });

  it('lists every object under a raw string prefix, in key order, with sizes', async () => {
    const base = fresh();
    const keys = ['data/input.csv', 'data/in/x.csv', 'data/in/deep/y.csv', 'data/inz.csv', 'data/other.csv'];
    for (const key of keys) await storage.put(base + key, key);
    const listed = await toArray(storage.list(`${base}data/in`));
    // Byte order of keys where S3 and a folder walk agree; the '-' versus '/' case is FileStorage's own test.
    expect(listed.map((o) => o.uri.slice(base.length))).toEqual([
      'data/in/deep/y.csv',
      'data/in/x.csv',
      'data/input.csv',
      'data/inz.csv',
    ]);
    expect(listed[0]).toEqual({ uri: `${base}data/in/deep/y.csv`, size: 'data/in/deep/y.csv'.length });
    expect(await toArray(storage.list(`${base}nothing-here/`))).toEqual([]);
  });

  it('writes a multi-part object from chunks of random sizes, byte for byte', async () => {
    const uri = `${fresh()}big.bin`;
    const data = randomData(20 * MiB + 12345);
    const writer = storage.createWriter(uri);
    for (const chunk of randomChunks(data, 3 * MiB, 7)) await writer.write(chunk);
    expect(await storage.head(uri)).toBeUndefined(); // nothing visible before complete
    await writer.complete();
    expect(writer.bytesWritten).toBe(data.length);
    expect((await storage.readAll(uri)).equals(data)).toBe(true);
    expect(await toArray(storage.listIncompleteUploads(uri))).toEqual([]);
  });

  it('writes many chunks per call (writeChunks), mixed with single writes and empty chunks, in order', async () => {
    const uri = `${fresh()}many.bin`;
    const data = randomData(18 * MiB + 777);
    const chunks = [...randomChunks(data, 256 * 1024, 11)];
    const writer = storage.createWriter(uri);
    expect(typeof (writer as { writeMany?: unknown }).writeMany).toBe('function');
    for (let i = 0; i < chunks.length; ) {
      if (i % 3 === 0) await writer.write(chunks[i++]!);
      const group = chunks.slice(i, i + 40);
      i += group.length;
      await writeChunks(writer, [Buffer.alloc(0), ...group, Buffer.alloc(0)]);
    }
    await writer.complete();
    expect(writer.bytesWritten).toBe(data.length);
    expect((await storage.readAll(uri)).equals(data)).toBe(true);
  });

  it('writes an empty object when a writer completes without data', async () => {
    const uri = `${fresh()}empty`;
    const writer = storage.createWriter(uri);
    await writer.complete();
    expect(await storage.head(uri)).toMatchObject({ uri, size: 0 });
    await writer.complete(); // a second complete is a no-op
  });

  it('leaves no object and no incomplete upload after abort, and abort can be repeated', async () => {
    const base = fresh();
    const uri = `${base}aborted.bin`;
    const writer = storage.createWriter(uri);
    await writer.write(randomData(9 * MiB)); // past one part: S3 has begun a multipart upload
    await writer.abort();
    await writer.abort();
    expect(await storage.head(uri)).toBeUndefined();
    expect(await toArray(storage.listIncompleteUploads(base))).toEqual([]);
    await expect(writer.write(Buffer.from('late'))).rejects.toThrow(/aborted/);
  });

  it('aborts a writer that never received data, leaving nothing', async () => {
    const base = fresh();
    const writer = storage.createWriter(`${base}never`);
    await writer.abort();
    expect(await storage.head(`${base}never`)).toBeUndefined();
    expect(await toArray(storage.listIncompleteUploads(base))).toEqual([]);
    await expect(writer.complete()).rejects.toThrow(/aborted/);
  });

  it('keeps a completed object when abort comes after complete', async () => {
    const uri = `${fresh()}kept`;
    const writer = storage.createWriter(uri);
    await writer.write(Buffer.from('done'));
    await writer.complete();
    await writer.abort();
    expect((await storage.readAll(uri)).toString()).toBe('done');
  });

  it('lists an abandoned writer as an incomplete upload, and aborting it twice is safe', async () => {
    const base = fresh();
    const uri = `${base}out/abandoned.bin`;
    const writer = storage.createWriter(uri);
    await writer.write(randomData(9 * MiB));
    let uploads = await toArray(storage.listIncompleteUploads(base));
    await eventually(async () => {
      uploads = await toArray(storage.listIncompleteUploads(base));
      return uploads.length === 1;
    }, 'the upload to be listed');
    expect(uploads[0]!.uri).toBe(uri);
    expect(uploads[0]!.initiated).toBeInstanceOf(Date);
    // A prefix that the target does not start with does not see it.
    expect(await toArray(storage.listIncompleteUploads(`${base}other`))).toEqual([]);
    // Nor does list: an unfinished write is not an object.
    expect(await toArray(storage.list(base))).toEqual([]);

    await storage.abortIncompleteUpload(uploads[0]!);
    await storage.abortIncompleteUpload(uploads[0]!);
    expect(await toArray(storage.listIncompleteUploads(base))).toEqual([]);
    await writer.abort(); // the writer's own cleanup finds nothing left, and does not fail
    expect(await storage.head(uri)).toBeUndefined();
  });

  it('concatenates several objects in order (streamed when sources are small)', async () => {
    const base = fresh();
    const parts = ['alpha\n', '', 'beta\n', 'gamma\n'];
    const sources = parts.map((_, i) => `${base}shards/${i}.out`);
    await Promise.all(sources.map((uri, i) => storage.put(uri, parts[i]!)));
    await storage.concat(sources, `${base}joined.out`);
    expect((await storage.readAll(`${base}joined.out`)).toString()).toBe('alpha\nbeta\ngamma\n');
  });

  it('concatenates nothing into an empty object', async () => {
    const uri = `${fresh()}none.out`;
    await storage.concat([], uri);
    expect(await storage.head(uri)).toMatchObject({ uri, size: 0 });
  });

  it('fails concat on a missing source and writes no target', async () => {
    const base = fresh();
    await storage.put(`${base}a`, 'a');
    await expect(storage.concat([`${base}a`, `${base}b`], `${base}joined`)).rejects.toBeInstanceOf(
      ObjectNotFoundError,
    );
    expect(await storage.head(`${base}joined`)).toBeUndefined();
    expect(await toArray(storage.listIncompleteUploads(base))).toEqual([]);
  });

  it('deletes an object, and deleting a missing one is not an error', async () => {
    const uri = `${fresh()}gone`;
    await storage.put(uri, 'x');
    await storage.delete(uri);
    expect(await storage.head(uri)).toBeUndefined();
    await storage.delete(uri);
  });
});

describe('writeChunks', () => {
  it('writes chunk by chunk, skipping empty ones, to a writer that cannot take many', async () => {
    const seen: string[] = [];
    const writer = {
      uri: 'file:///x',
      bytesWritten: 0,
      write: async (chunk: Buffer) => {
        seen.push(chunk.toString());
      },
      complete: async () => {},
      abort: async () => {},
    };
    await writeChunks(writer, [Buffer.from('a'), Buffer.alloc(0), Buffer.from('bc'), Buffer.from('\n')]);
    expect(seen).toEqual(['a', 'bc', '\n']);
  });
});
