/** The scheme router: one Storage for jobs whose input and output live on different backends. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../../src/storage/file';
import { Storages, storageFor, storages } from '../../src/storage/index';
import { LazyStorage } from '../../src/storage/lazy';
import { LocationError } from '../../src/storage/uri';
import { MiB, randomData, toArray } from '../support/bytes';
import { type S3Harness, startS3Server } from '../support/s3-server';
import { makeTempDir, type TempDir } from '../support/tmp';

let harness: S3Harness;
let dir: TempDir;
let router: Storages;

beforeAll(async () => {
  [harness, dir] = await Promise.all([startS3Server({ buckets: ['routed'] }), makeTempDir('storages')]);
  router = new Storages({ s3: harness.storage });
});
afterAll(async () => {
  await Promise.all([harness.stop(), dir.remove()]);
});

describe('Storages', () => {
  it('sends each location to the backend of its scheme', () => {
    expect(router.for('s3://routed/key')).toBe(harness.storage);
    expect(router.for(`${dir.uri}key`)).toBeInstanceOf(FileStorage);
    expect(() => router.for('https://example.com/key')).toThrow(LocationError);
  });

  it('reads file:// input and writes s3:// output through one object', async () => {
    await router.put(`${dir.uri}in/a.csv`, 'a,1\n');
    const [input] = await toArray(router.list(`${dir.uri}in/`));
    const output = 's3://routed/out/a.csv.out';
    const writer = router.createWriter(output);
    await writer.write(await router.readAll(input!.uri));
    await writer.complete();
    expect((await router.readAll(output)).toString()).toBe('a,1\n');
  });

  it('concatenates file:// shards into an s3:// object by streaming', async () => {
    const shards = [randomData(3 * MiB), randomData(100)];
    const uris = shards.map((_, i) => `${dir.uri}shards/${i}.out`);
    await Promise.all(uris.map((uri, i) => router.put(uri, shards[i]!)));
    await router.concat(uris, 's3://routed/joined.out');
    expect((await router.readAll('s3://routed/joined.out')).equals(Buffer.concat(shards))).toBe(true);
  });

  it('routes incomplete uploads by their location', async () => {
    const writer = router.createWriter(`${dir.uri}pending/x.out`);
    await writer.write(Buffer.from('partial'));
    const [upload] = await toArray(router.listIncompleteUploads(`${dir.uri}pending/`));
    await router.abortIncompleteUpload(upload!);
    expect(await toArray(router.listIncompleteUploads(`${dir.uri}pending/`))).toEqual([]);
    await writer.abort();
  });

  it('refuses file:// locations when built without a file backend (deployed stages)', () => {
    const deployed = new Storages({ s3: harness.storage, file: false });
    expect(() => deployed.for(`${dir.uri}x`)).toThrow(/file:\/\/ locations are not available/);
  });

  it('serves file:// locations with no S3 configuration at all', async () => {
    // The S3 backend is built on first use, so a file-only run never needs a region or credentials.
    expect(storageFor(`${dir.uri}x`)).toBeInstanceOf(FileStorage);
    expect(storages()).toBe(storages());
    await storages().put(`${dir.uri}shared.txt`, 'ok');
    expect((await storages().readAll(`${dir.uri}shared.txt`)).toString()).toBe('ok');
  });
});

describe('LazyStorage', () => {
  it('builds its backend once, on the first call, and never for a process that does not use it', async () => {
    let loads = 0;
    const lazy = new LazyStorage(async () => {
      loads++;
      return new FileStorage();
    });
    expect(loads).toBe(0);
    await lazy.put(`${dir.uri}lazy/a.txt`, 'a');
    const [read, head] = await Promise.all([
      lazy.readAll(`${dir.uri}lazy/a.txt`),
      lazy.head(`${dir.uri}lazy/a.txt`),
    ]);
    expect(read.toString()).toBe('a');
    expect(head?.size).toBe(1);
    expect((await toArray(lazy.list(`${dir.uri}lazy/`))).map((o) => o.uri)).toEqual([`${dir.uri}lazy/a.txt`]);
    expect(loads).toBe(1);
  });

  it('writes through a writer made while the backend is still loading, in order', async () => {
    let finish!: (s: FileStorage) => void;
    const lazy = new LazyStorage(() => new Promise<FileStorage>((resolve) => (finish = resolve)));
    const writer = lazy.createWriter(`${dir.uri}lazy/early.txt`);
    const writes = [
      writer.write(Buffer.from('one,')),
      writer.writeMany!([Buffer.from('two,'), Buffer.from('three')]),
    ];
    finish(new FileStorage());
    await Promise.all(writes);
    await writer.complete();
    expect(writer.bytesWritten).toBe(13);
    expect((await lazy.readAll(`${dir.uri}lazy/early.txt`)).toString()).toBe('one,two,three');
  });

  it('reports a backend that cannot load on every call, and aborting its writer is a no-op', async () => {
    const lazy = new LazyStorage(() => Promise.reject(new Error('no SDK here')));
    await expect(lazy.readAll('s3://b/k')).rejects.toThrow('no SDK here');
    const writer = lazy.createWriter('s3://b/k');
    await expect(writer.write(Buffer.from('x'))).rejects.toThrow('no SDK here');
    await expect(writer.abort()).resolves.toBeUndefined();
  });
});
