import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { SIDECAR_ENTRY, sidecarArgv, sourceKey } from '../../src/local/sidecar-bundle';
import { makeTempDir } from '../support/tmp';

describe('the sidecar a local run starts', () => {
  it('is the bundle, built once and found again while the sources are unchanged', async ({ expect }) => {
    const [first, again] = [await sidecarArgv({}), await sidecarArgv({})];
    expect(first).toHaveLength(1);
    expect(first[0]).toMatch(/sidecar-[0-9a-f]{16}[/\\]sidecar\.mjs$/);
    expect(existsSync(first[0]!)).toBe(true);
    expect(again).toEqual(first);
  }, 60_000);

  it('is the TypeScript entry under tsx with BATCH_TRANSFORM_SIDECAR=tsx', async ({ expect }) => {
    const argv = await sidecarArgv({ BATCH_TRANSFORM_SIDECAR: 'tsx' });
    expect(argv.at(-1)).toBe(SIDECAR_ENTRY);
    expect(argv[0]).toBe('--import');
  });

  it('is the TypeScript entry under tsx when other users can write to the bundle cache', async ({
    expect,
  }) => {
    await using tmp = await makeTempDir('sidecar-cache');
    await mkdir(join(tmp.path, 'batch-transform'));
    await chmod(join(tmp.path, 'batch-transform'), 0o777);
    const argv = await sidecarArgv({}, tmp.path);
    expect(argv.at(-1)).toBe(SIDECAR_ENTRY);
    expect(await readdir(join(tmp.path, 'batch-transform'))).toEqual([]);
  });

  it('is rebuilt when a source file is modified, added or removed (the cache key changes)', async ({
    expect,
  }) => {
    await using tmp = await makeTempDir('source-key');
    await mkdir(join(tmp.path, 'src', 'a'), { recursive: true });
    await writeFile(join(tmp.path, 'src', 'a', 'x.ts'), 'export const x = 1;\n');
    await writeFile(join(tmp.path, 'lock.json'), '{}');
    const inputs = ['src', 'lock.json'];
    const keys = [await sourceKey(tmp.path, inputs)];
    expect(await sourceKey(tmp.path, inputs)).toBe(keys[0]);
    await utimes(join(tmp.path, 'src', 'a', 'x.ts'), new Date(), new Date(Date.now() + 5000));
    keys.push(await sourceKey(tmp.path, inputs));
    await writeFile(join(tmp.path, 'src', 'y.ts'), '');
    keys.push(await sourceKey(tmp.path, inputs));
    await rm(join(tmp.path, 'src', 'a', 'x.ts'));
    keys.push(await sourceKey(tmp.path, inputs));
    await rm(join(tmp.path, 'lock.json'));
    keys.push(await sourceKey(tmp.path, inputs));
    expect(new Set(keys).size).toBe(keys.length);
  });
});
