import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchModelData } from '../../src/model/model-data';
import { storages } from '../../src/storage/index';

let dir: string;
const storage = storages();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'model-data-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A .tar.gz of `files` whose entries carry the given owner and modes, as an archive made elsewhere would. */
async function archive(name: string, files: Record<string, { body: string; mode: number }>, uid = 501) {
  const src = join(dir, `${name}-src`);
  await mkdir(join(src, 'sub'), { recursive: true });
  for (const [path, { body, mode }] of Object.entries(files)) {
    await writeFile(join(src, path), body);
    await chmod(join(src, path), mode);
  }
  await chmod(join(src, 'sub'), 0o700);
  const file = join(dir, `${name}.tar.gz`);
  await tar.c(
    { gzip: true, file, cwd: src, portable: false, onWriteEntry: (e) => Object.assign(e, { uid, gid: uid }) },
    Object.keys(files).concat('sub'),
  );
  return `file://${file}`;
}

describe('fetchModelData', () => {
  it('extracts every entry readable by any user, owned by whoever extracts, whatever the archive says', async () => {
    const url = await archive('modes', {
      'model.json': { body: '{"w":1}', mode: 0o600 },
      'sub/weights.bin': { body: 'xyz', mode: 0o400 },
    });
    const out = join(dir, 'modes-out');
    const { files } = await fetchModelData(storage, url, out);

    expect(files).toBeGreaterThanOrEqual(2);
    expect(await readFile(join(out, 'model.json'), 'utf8')).toBe('{"w":1}');
    for (const path of ['model.json', 'sub/weights.bin']) {
      const s = await stat(join(out, path));
      expect(s.mode & 0o444, path).toBe(0o444);
      expect(s.uid, path).toBe(process.getuid!());
    }
    expect((await stat(join(out, 'sub'))).mode & 0o555).toBe(0o555);
  });

  it('names bytes that are not gzip as a format error', async () => {
    const file = join(dir, 'not-gzip.tar.gz');
    await writeFile(file, 'plain text, not an archive');
    await expect(fetchModelData(storage, `file://${file}`, join(dir, 'format-out'))).rejects.toThrow(
      /\(not a gzip-compressed tar archive\)/,
    );
  });

  it('reports a file-system failure with its own code, not as a bad archive', async () => {
    const url = await archive('fs', { 'model.json': { body: '{}', mode: 0o644 } });
    // A non-empty directory where the archive has a file: tar cannot replace it, as it could not
    // write into a volume it has no permission for.
    const out = join(dir, 'fs-out');
    await mkdir(join(out, 'model.json'), { recursive: true });
    await writeFile(join(out, 'model.json', 'keep'), '');
    const error = await fetchModelData(storage, url, out).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/ENOTEMPTY|EISDIR|EEXIST/);
    expect((error as Error).message).not.toMatch(/not a gzip|expected a \.tar\.gz/);
  });
});
