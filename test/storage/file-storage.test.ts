/** FileStorage specifics: path safety, temp files, and S3's key order on a folder tree. */
import { access, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../../src/storage/file';
import { joinUri, LocationError } from '../../src/storage/uri';
import { MiB, randomData, toArray } from '../support/bytes';
import { makeTempDir, type TempDir } from '../support/tmp';

const storage = new FileStorage();
let dir: TempDir;
let prefixes = 0;
/** A fresh folder per test: `{ path, uri }` with the uri ending in '/'. */
const fresh = () => {
  const name = `t${++prefixes}`;
  return { path: `${dir.path}/${name}`, uri: `${dir.uri}${name}/` };
};

beforeAll(async () => {
  dir = await makeTempDir('file-storage');
});
afterAll(() => dir.remove());

describe('locations that would leave their prefix', () => {
  it.each([
    ['a ".." segment', '../escaped.txt'],
    ['a deeper ".." segment', 'sub/../../escaped.txt'],
    ['a "." segment', './here.txt'],
    ['an empty segment', 'a//b.txt'],
  ])('refuses %s for every operation, with a clear error', async (_what, relative) => {
    const base = fresh();
    const uri = joinUri(base.uri, relative);
    expect(() => storage.createWriter(uri)).toThrow(LocationError);
    expect(() => storage.createWriter(uri)).toThrow(/"\.", "\.\." or empty segments/);
    await expect(storage.put(uri, 'x')).rejects.toThrow(LocationError);
    await expect(storage.readAll(uri)).rejects.toThrow(LocationError);
    await expect(storage.head(uri)).rejects.toThrow(LocationError);
    await expect(storage.delete(uri)).rejects.toThrow(LocationError);
    await expect(toArray(storage.list(uri))).rejects.toThrow(LocationError);
    await expect(access(`${dir.path}/escaped.txt`)).rejects.toThrow();
  });

  it('refuses s3:// locations', async () => {
    await expect(storage.head('s3://bucket/key')).rejects.toThrow(/FileStorage handles file:\/\//);
  });
});

describe('list', () => {
  it('orders keys by bytes as S3 does, not by folder walk', async () => {
    const base = fresh();
    for (const key of ['a/x', 'a-b', 'a.c', 'a0', 'ab/y', 'a/z/deep']) await storage.put(base.uri + key, key);
    const listed = await toArray(storage.list(base.uri));
    // '-' 0x2d < '.' 0x2e < '/' 0x2f < '0' 0x30 < 'b' 0x62
    expect(listed.map((o) => o.uri.slice(base.uri.length))).toEqual([
      'a-b',
      'a.c',
      'a/x',
      'a/z/deep',
      'a0',
      'ab/y',
    ]);
  });

  it('follows a symbolic link to a file', async () => {
    const base = fresh();
    await storage.put(`${base.uri}real.txt`, 'twelve bytes');
    await symlink(`${base.path}/real.txt`, `${base.path}/link.txt`);
    expect(await toArray(storage.list(base.uri))).toEqual([
      { uri: `${base.uri}link.txt`, size: 12 },
      { uri: `${base.uri}real.txt`, size: 12 },
    ]);
  });

  it('lists nothing under a folder that does not exist', async () => {
    expect(await toArray(storage.list(`${dir.uri}no/such/folder/`))).toEqual([]);
  });
});

describe('writers', () => {
  it('fill a hidden temp file beside the target, invisible to list and head, renamed on complete', async () => {
    const base = fresh();
    const uri = `${base.uri}out/result.csv`;
    const writer = storage.createWriter(uri);
    await writer.write(Buffer.from('a,b\n'));
    const during = await readdir(`${base.path}/out`);
    expect(during).toEqual([expect.stringMatching(/^\.result\.csv\.partial-[0-9a-f]{16}$/)]);
    expect(await toArray(storage.list(base.uri))).toEqual([]);
    expect(await storage.head(uri)).toBeUndefined();

    await writer.complete();
    expect(await readdir(`${base.path}/out`)).toEqual(['result.csv']);
    expect((await storage.readAll(uri)).toString()).toBe('a,b\n');
  });

  it('abort during a write in flight removes the temp file after that write', async () => {
    const base = fresh();
    const uri = `${base.uri}big.bin`;
    const writer = storage.createWriter(uri);
    const writing = writer.write(randomData(32 * MiB));
    await writer.abort();
    await writing;
    expect(await readdir(base.path)).toEqual([]);
    expect(await toArray(storage.listIncompleteUploads(base.uri))).toEqual([]);
  });

  it('refuse a target that is a folder or looks like a temp file', () => {
    expect(() => storage.createWriter(`${dir.uri}folder/`)).toThrow(LocationError);
    expect(() => storage.createWriter(`${dir.uri}.x.partial-0123456789abcdef`)).toThrow(LocationError);
  });

  it('fail complete when the target is an existing folder, leaving no temp file', async () => {
    const base = fresh();
    await mkdir(`${base.path}/taken`, { recursive: true });
    const writer = storage.createWriter(`${base.uri}taken`);
    await writer.write(Buffer.from('x'));
    await expect(writer.complete()).rejects.toThrow(/writing .*taken failed/);
    await writer.abort();
    expect(await readdir(base.path)).toEqual(['taken']);
  });
});

describe('abortIncompleteUpload', () => {
  it('deletes only a temp file of the named target', async () => {
    const base = fresh();
    await mkdir(base.path, { recursive: true });
    await writeFile(`${base.path}/keep.txt`, 'precious');
    await expect(
      storage.abortIncompleteUpload({ uri: `${base.uri}other.txt`, uploadId: 'keep.txt' }),
    ).rejects.toThrow(/not an incomplete upload/);
    await expect(
      storage.abortIncompleteUpload({ uri: `${base.uri}a`, uploadId: '.b.partial-0123456789abcdef' }),
    ).rejects.toThrow(/not an incomplete upload/);
    expect(await readdir(base.path)).toEqual(['keep.txt']);
  });
});

describe('a staging folder', () => {
  it('keeps an unfinished write out of the target folder, lists and aborts it, and renames it into place', async () => {
    const target = fresh();
    const staging = fresh();
    const staged = new FileStorage({ stagingDir: staging.path });
    const uri = joinUri(target.uri, 'sub/a.csv.out');
    const w = staged.createWriter(uri);
    await w.write(Buffer.from('half'));
    await expect(readdir(target.path, { recursive: true }).catch(() => [])).resolves.toEqual([]);
    const open = await toArray(staged.listIncompleteUploads(target.uri));
    expect(open.map((u) => u.uri)).toEqual([uri]);
    await staged.abortIncompleteUpload(open[0]!);
    expect(await toArray(staged.listIncompleteUploads(target.uri))).toEqual([]);

    const w2 = staged.createWriter(uri);
    await w2.write(Buffer.from('whole'));
    await w2.complete();
    expect((await staged.readAll(uri)).toString()).toBe('whole');
    expect(
      (await readdir(staging.path, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()),
    ).toEqual([]);
  });
});
