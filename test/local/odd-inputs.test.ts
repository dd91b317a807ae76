import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, runCli, TEST_MODEL, lastJson } from '../support/cli';
import { countIncompleteUploads, type S3Harness, startS3Server } from '../support/s3-server';
import { makeTempDir, type TempDir } from '../support/tmp';

/**
 * `run --local` with odd object keys, manifests, model artifacts, work locations and S3-compatible
 * servers: every case ends with a clear outcome (and with --json, its JSON line), never a stack.
 */

const S3_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
/** Keys that a percent-decoding step would confuse: each must come back as `<key>.out`, exactly. */
const ODD_KEYS = ['a b.csv', 'a%20b.csv', 'a%2Fb.csv', 'pct%zz.csv', 'a%41.csv', 'aA.csv'];

const noStack = (r: CliResult) => expect(`${r.stdout}${r.stderr}`).not.toMatch(/\n\s+at /);

function request(name: string, input: string, output: string, dataType = 'S3Prefix') {
  return {
    TransformJobName: name,
    ModelName: 'test-model',
    TransformInput: {
      DataSource: { S3DataSource: { S3DataType: dataType, S3Uri: input } },
      ContentType: 'text/csv',
      SplitType: 'Line',
    },
    TransformOutput: { S3OutputPath: output, AssembleWith: 'Line' },
    TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 2 },
  };
}

let dir: TempDir;
beforeAll(async () => {
  dir = await makeTempDir('bt-odd');
});
afterAll(() => dir.remove());

async function runJob(name: string, body: unknown, extra: string[] = [], env: NodeJS.ProcessEnv = {}) {
  const file = join(dir.path, `${name}.json`);
  await writeFile(file, JSON.stringify(body));
  const args = ['run', file, '--local', '--model-command', TEST_MODEL, '--json', ...extra];
  if (!extra.includes('--work-dir')) args.push('--work-dir', join(dir.path, 'work'));
  return runCli(args, { env, timeoutMs: 90_000 });
}

describe('object keys with %', () => {
  it('each file:// key comes back as <key>.out with its own bytes; logs stay in the run location', async () => {
    const input = join(dir.path, 'pct', 'in');
    const out = join(dir.path, 'pct', 'out');
    await mkdir(input, { recursive: true });
    for (const key of ODD_KEYS) await writeFile(join(input, key), `${key}\n`);
    const r = await runJob('pct-file', request('pct-file', `file://${input}/`, `file://${out}/`));
    expect(r.code, r.stderr).toBe(0);
    noStack(r);
    expect(lastJson(r).Progress.objectsCompleted).toBe(ODD_KEYS.length);
    expect((await readdir(out)).sort()).toEqual(ODD_KEYS.map((k) => `${k}.out`).sort());
    for (const key of ODD_KEYS) expect(await readFile(join(out, `${key}.out`), 'utf8')).toBe(`${key}\n`);
    // Item 11: the run's logs are under its own work location, named in the summary; no temp folder.
    const logs = join(dir.path, 'work', 'pct-file', 'logs');
    expect(r.stderr).toContain(`logs:    ${logs}`);
    expect((await readdir(logs)).length).toBeGreaterThan(0);
    expect((await readdir(tmpdir())).filter((n) => n.startsWith('bt-pct-file-'))).toEqual([]);
  }, 90_000);

  it('a manifest entry names its file as written (`a%41.csv` is not `aA.csv`)', async () => {
    const input = join(dir.path, 'pct', 'in');
    const out = join(dir.path, 'pct-manifest', 'out');
    const manifest = join(dir.path, 'pct-manifest', 'list.manifest');
    await mkdir(join(dir.path, 'pct-manifest'), { recursive: true });
    await writeFile(manifest, JSON.stringify([{ prefix: `file://${input}/` }, 'a%41.csv', 'a%20b.csv']));
    const r = await runJob(
      'pct-manifest',
      request('pct-manifest', `file://${manifest}`, `file://${out}/`, 'ManifestFile'),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(out, 'a%41.csv.out'), 'utf8')).toBe('a%41.csv\n');
    expect(await readFile(join(out, 'a%20b.csv.out'), 'utf8')).toBe('a%20b.csv\n');
  }, 90_000);
});

describe('a manifest prefix', () => {
  it('is concatenated with each entry as strings, as SageMaker does: `…/in/pre` + `fix.csv` reads `prefix.csv`', async () => {
    const input = join(dir.path, 'concat', 'in');
    const out = join(dir.path, 'concat', 'out');
    await mkdir(input, { recursive: true });
    await writeFile(join(input, 'prefix.csv'), 'concatenated\n');
    const manifest = join(dir.path, 'concat', 'list.manifest');
    await writeFile(manifest, JSON.stringify([{ prefix: `file://${input}/pre` }, 'fix.csv']));
    const r = await runJob(
      'concat',
      request('concat', `file://${manifest}`, `file://${out}/`, 'ManifestFile'),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(out, 'fix.csv.out'), 'utf8')).toBe('concatenated\n');
  }, 90_000);
});

describe('on an S3-compatible server', () => {
  let s3: S3Harness;
  beforeAll(async () => {
    s3 = await startS3Server({ buckets: ['data'] });
  });
  afterAll(() => s3.stop());

  it('keys with % round-trip; a server without ListMultipartUploads: the job Completes and cleanup says what it could not check', async () => {
    await s3.seed(
      'data',
      ODD_KEYS.map((k) => [`in/${k}`, `${k}\n`] as const),
    );
    s3.faults.set((req) => (req.operation === 'ListMultipartUploads' ? { status: 501 } : undefined));
    try {
      const r = await runJob(
        'pct-s3',
        request('pct-s3', 's3://data/in/', 's3://data/out/'),
        ['--endpoint-url', s3.endpoint, '--work-dir', 's3://data/work/'],
        S3_ENV,
      );
      expect(r.code, r.stderr).toBe(0);
      noStack(r);
      expect(lastJson(r).TransformJobStatus).toBe('Completed');
      expect(r.stderr).toMatch(/warning: incomplete uploads under s3:\/\/data\/.* were not checked/);
      for (const key of ODD_KEYS) {
        const got = await s3.client.send(new GetObjectCommand({ Bucket: 'data', Key: `out/${key}.out` }));
        expect(await got.Body!.transformToString()).toBe(`${key}\n`);
      }
      expect(await countIncompleteUploads(s3, 'data')).toBe(0);
    } finally {
      s3.faults.clear();
    }
  }, 90_000);
});

describe('model artifacts that cannot be used fail the job, saying why', () => {
  it.each([
    ['missing', async (_d: string) => 'file:///nowhere/model.tar.gz', 'not found'],
    [
      'not a tarball',
      async (d: string) => {
        await writeFile(join(d, 'plain.tar.gz'), 'just text');
        return `file://${d}/plain.tar.gz`;
      },
      'not a gzip-compressed tar archive',
    ],
    [
      'holding a `..` entry',
      async (d: string) => {
        await mkdir(join(d, 'inside'), { recursive: true });
        await writeFile(join(d, 'outside.txt'), 'escape');
        await tar.c(
          { gzip: true, file: join(d, 'climb.tar.gz'), cwd: join(d, 'inside'), preservePaths: true },
          ['../outside.txt'],
        );
        return `file://${d}/climb.tar.gz`;
      },
      'outside the model directory',
    ],
  ])(
    '%s: Failed, exit 1, the reason in the JSON line',
    async (what, make, reason) => {
      const d = join(dir.path, 'model', what.replace(/\W+/g, '-'));
      await mkdir(d, { recursive: true });
      await mkdir(join(d, 'in'), { recursive: true });
      await writeFile(join(d, 'in', 'x.csv'), '1\n');
      const r = await runJob(
        `model-${what.replace(/\W+/g, '-')}`.replace(/-+$/, ''),
        request('m', `file://${d}/in/`, `file://${d}/out/`),
        ['--model-data', await make(d)],
      );
      expect(r.code, r.stderr).toBe(1);
      noStack(r);
      expect(lastJson(r).TransformJobStatus).toBe('Failed');
      expect(lastJson(r).FailureReason).toContain(reason);
    },
    60_000,
  );
});

describe('work locations', () => {
  it.each([
    ['inside the input', (d: string) => `${d}/in/work`, 'TransformInput.DataSource.S3DataSource.S3Uri'],
    ['inside the output', (d: string) => `${d}/out/work`, 'TransformOutput.S3OutputPath'],
  ])(
    '%s: refused, exit 2, naming the field',
    async (what, workDir, path) => {
      const d = join(dir.path, 'overlap', what.replace(/\W+/g, '-'));
      await mkdir(join(d, 'in'), { recursive: true });
      await writeFile(join(d, 'in', 'x.csv'), '1\n');
      const r = await runJob('overlap', request('overlap', `file://${d}/in/`, `file://${d}/out/`), [
        '--work-dir',
        workDir(d),
      ]);
      expect(r.code).toBe(2);
      noStack(r);
      expect(lastJson(r).Problems.map((p: { path: string }) => p.path)).toEqual([path]);
      expect(existsSync(join(workDir(d), 'overlap'))).toBe(false);
    },
    60_000,
  );

  it('an s3:// work location with no region configured: exit 2, saying to set one', async () => {
    const d = join(dir.path, 'no-region');
    await mkdir(join(d, 'in'), { recursive: true });
    const r = await runJob(
      'no-region',
      request('no-region', `file://${d}/in/`, `file://${d}/out/`),
      ['--work-dir', 's3://data/work/'],
      {
        AWS_REGION: undefined,
        AWS_DEFAULT_REGION: undefined,
        AWS_PROFILE: undefined,
        AWS_CONFIG_FILE: join(d, 'none'),
        AWS_SHARED_CREDENTIALS_FILE: join(d, 'none'),
      },
    );
    expect(r.code, r.stderr).toBe(2);
    noStack(r);
    expect(r.stderr).toContain('set AWS_REGION');
    expect(lastJson(r).TransformJobStatus).toBe('Invalid');
  }, 60_000);
});
