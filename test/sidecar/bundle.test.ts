import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bundleSidecar } from '../../containers/sidecar/bundle';
import { makeTempDir, type TempDir } from '../support/tmp';
import { model, SidecarFixture, upper } from './harness';

// The sidecar image runs the esbuild bundle on plain Node. No image can be built here, so run the
// same bundle as a process, from a folder with no node_modules beside it and without tsx.

let fx: SidecarFixture;
let dir: TempDir;
let bundle: string;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  dir = await makeTempDir('sidecar-bundle');
  [fx, bundle] = await Promise.all([SidecarFixture.start(), bundleSidecar(dir.path)]);
});
afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
  await fx?.stop();
  await dir?.remove();
});

it('the bundle transforms a partition as a plain node process', async () => {
  const echo = await model({ TEST_MODEL_UPPERCASE: '1' }, cleanups);
  const text = 'one,1\ntwo,2\n';
  const job = await fx.prepare('bundle', { objects: { 'a.csv': text, 'b/c.csv': text } });
  const run = await fx.run(job, { model: echo, command: [process.execPath, bundle] });
  expect(run.code, run.stderr).toBe(0);
  expect((await fx.output(job, 'a.csv'))!.equals(upper(text))).toBe(true);
  expect((await fx.output(job, 'b/c.csv'))!.equals(upper(text))).toBe(true);
  expect(run.logs.map((l) => l.msg)).toContain('partition finished');
});

it('the bundle answers an unknown command with exit code 2 and says what it expects', () => {
  const r = spawnSync(process.execPath, [bundle, 'transform'], { cwd: dir.path, encoding: 'utf8' });
  expect(r.status).toBe(2);
  expect(r.stderr).toContain('unknown command "transform"; expected run or fetch-model');
});

it('the bundle refuses to run without its environment, naming what is missing (exit code 2)', () => {
  const r = spawnSync(process.execPath, [bundle, 'run'], {
    cwd: dir.path,
    encoding: 'utf8',
    env: { PATH: process.env.PATH },
  });
  expect(r.status).toBe(2);
  expect(r.stderr).toContain('the sidecar needs JOB_URI, PLAN_URI, PARTITION_INDEX in its environment');
});

it('the bundle extracts a model archive with fetch-model (its code is a chunk loaded on demand)', async () => {
  const src = join(dir.path, 'model-src');
  await mkdir(src, { recursive: true });
  await writeFile(join(src, 'weights.json'), '{"w":[1,2,3]}');
  const archive = join(dir.path, 'model.tar.gz');
  await tar.c({ gzip: true, file: archive, cwd: src }, ['weights.json']);
  const target = join(dir.path, 'model-dir');
  const r = spawnSync(process.execPath, [bundle, 'fetch-model'], {
    cwd: dir.path,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, MODEL_DATA_URL: `file://${archive}`, MODEL_DIR: target },
  });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stderr).toContain(`extracted 1 entries from file://${archive}`);
  expect(await readFile(join(target, 'weights.json'), 'utf8')).toBe('{"w":[1,2,3]}');
});
