import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import * as tar from 'tar';
import { countIncompleteUploads, type S3Harness, startS3Server } from '../support/s3-server';
import { lastJson, ROOT, runCli, TEST_MODEL } from '../support/cli';
import { makeTempDir, type TempDir } from '../support/tmp';

/**
 * `batch-transform run --local`, spawned as a user runs it: the README's quick start, worker counts,
 * model processes that die, exit codes and the --json result.
 */

/** The last line of stdout, parsed: the DescribeTransformJob-shaped result of --json. */
async function readTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out[path.slice(dir.length + 1)] = await readFile(path, 'latin1');
  }
  return out;
}

function job(name: string, input: string, output: string, extra: Record<string, unknown> = {}) {
  return {
    TransformJobName: name,
    ModelName: 'test-model',
    BatchStrategy: 'MultiRecord',
    MaxPayloadInMB: 1,
    MaxConcurrentTransforms: 3,
    TransformInput: {
      DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: input } },
      ContentType: 'text/csv',
      SplitType: 'Line',
    },
    TransformOutput: { S3OutputPath: output, AssembleWith: 'Line' },
    TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
    ...extra,
  };
}

/** Rows `<object>,<row>,<padding>`: every record names where it came from. */
function rows(object: number, count: number): string {
  let s = '';
  for (let i = 0; i < count; i++) s += `${object},${i},${'x'.repeat((i * 7) % 41)}\n`;
  return s;
}

function runNode(args: readonly string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('the README quick start', () => {
  const outDir = join(ROOT, '.local-runs', 'iris', 'output');

  it('runs examples/iris/job.json locally: one .out per input, every row classified, exit 0', async () => {
    await rm(outDir, { recursive: true, force: true });
    const r = await runCli(['run', 'examples/iris/job.json', '--local'], { timeoutMs: 90_000 });
    expect(r.stderr).not.toMatch(/Error:|at .*\.ts:\d+/);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Transform job iris-example: Completed');
    expect(r.stdout).toContain('objects: 3 completed, 0 failed');

    const labels = new Map(
      (await readFile(join(ROOT, 'examples/iris/labels.csv'), 'utf8'))
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(',') as [string, string]),
    );
    let correct = 0;
    let total = 0;
    for (const name of ['iris-1.csv', 'iris-2.csv', 'iris-3.csv']) {
      const input = (await readFile(join(ROOT, 'examples/iris/input', name), 'utf8')).trim().split('\n');
      const output = (await readFile(join(outDir, `${name}.out`), 'utf8')).trim().split('\n');
      // JoinSource Input + OutputFilter $[0,-2,-1]: the row's id, then the model's label and probability.
      expect(output).toHaveLength(input.length);
      output.forEach((line, i) => {
        const [id, label, probability] = line.split(',');
        expect(id).toBe(input[i]!.split(',')[0]);
        expect(['setosa', 'versicolor', 'virginica']).toContain(label);
        expect(Number(probability)).toBeGreaterThan(0.3);
        if (labels.get(id!) === label) correct++;
        total++;
      });
    }
    expect(total).toBe(150);
    // A real classifier, not an echo: the trained model gets most of Iris right.
    expect(correct / total).toBeGreaterThan(0.9);
  });
});

describe('run --local', () => {
  let tmp: TempDir;
  let dir: string;
  beforeAll(async () => {
    tmp = await makeTempDir('local-run');
    dir = tmp.path;
  });
  afterAll(async () => {
    await tmp.remove();
  });
  /** The CLI with this suite's own work root: job names here are not shared with other runs of the suite. */
  const runLocal: typeof runCli = (args, opts) =>
    runCli(
      args[0] === 'run' && !args.includes('--work-dir') ? [...args, '--work-dir', join(dir, 'work')] : args,
      opts,
    );

  it('writes the same outputs with 3 workers (and a sharded object) as with 1', async () => {
    const input = join(dir, 'same', 'in');
    await mkdir(input, { recursive: true });
    // Objects of different sizes, one large enough to be cut into byte-range shards at 1 MB.
    await writeFile(join(input, 'a.csv'), rows(1, 10));
    await writeFile(join(input, 'b.csv'), rows(2, 2_000));
    await writeFile(join(input, 'big.csv'), rows(3, 120_000));
    await writeFile(join(input, 'nested-c.csv'), rows(4, 7));
    const run = async (count: number) => {
      const out = join(dir, 'same', `out-${count}`);
      const request = job(`same-${count}`, `file://${input}/`, `file://${out}/`, {
        TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: count },
        Extensions: { ShardMinSizeInMB: 1 },
      });
      const file = join(dir, `same-${count}.json`);
      await writeFile(file, JSON.stringify(request));
      const r = await runLocal(['run', file, '--local', '--model-command', TEST_MODEL, '--json'], {
        env: { TEST_MODEL_UPPERCASE: '1', TEST_MODEL_LATENCY_MS: '0-3' },
        timeoutMs: 120_000,
      });
      expect(r.code, r.stderr).toBe(0);
      return { result: lastJson(r), files: await readTree(out) };
    };
    const one = await run(1);
    const three = await run(3);
    expect(Object.keys(one.files).sort()).toEqual([
      'a.csv.out',
      'b.csv.out',
      'big.csv.out',
      'nested-c.csv.out',
    ]);
    expect(three.files).toEqual(one.files);
    // The echo model upper-cases: the output is exactly the input, transformed, in order.
    expect(one.files['big.csv.out']).toBe(rows(3, 120_000).toUpperCase());
    expect(three.result.Progress.records).toBe(10 + 2_000 + 120_000 + 7);
    expect(three.result.TransformJobStatus).toBe('Completed');
  });

  it('keeps file:// outputs exact while read buffers and response blocks are reused under retries, 413 halving and 4 in flight', async () => {
    // file:// Line input is read into a small pool of reused buffers; a mini-batch that is retried
    // or halved still points into them, so any early reuse would show up as corrupted output.
    const input = join(dir, 'pooled', 'in');
    await mkdir(input, { recursive: true });
    // ~10 MB: many more 1 MB mini-batches than the 4 in flight, so buffers are released and read
    // into again while later batches (and their retries and halves) still point into them.
    const text = rows(5, 400_000).replace(/^(5,(?:777|131337|250001|390001),)/gm, '$1RETRY-');
    await writeFile(join(input, 'big.csv'), text);
    const out = join(dir, 'pooled', 'out');
    const file = join(dir, 'pooled.json');
    await writeFile(
      file,
      JSON.stringify(
        job('pooled', `file://${input}/`, `file://${out}/`, {
          MaxConcurrentTransforms: 4,
          MaxPayloadInMB: 1,
          Extensions: { ShardMinSizeInMB: 0, SplitBatchOnFailure: true },
        }),
      ),
    );
    const r = await runLocal(['run', file, '--local', '--model-command', TEST_MODEL, '--json'], {
      env: {
        TEST_MODEL_UPPERCASE: '1',
        TEST_MODEL_LATENCY_MS: '2-40',
        TEST_MODEL_MAX_BODY_BYTES: String(300 * 1024),
        TEST_MODEL_FAIL_MARKER: 'RETRY-',
        TEST_MODEL_FAIL_TIMES: '3', // fewer than the 4 attempts a mini-batch gets: retries always win
      },
      timeoutMs: 120_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const result = lastJson(r);
    expect(result.Progress.invocationRetries).toBeGreaterThan(0);
    expect(result.Progress.modelErrors4xx).toBeGreaterThan(0); // the 413s that made it halve
    expect(await readFile(join(out, 'big.csv.out'), 'latin1')).toBe(text.toUpperCase());
  });

  it('fails clearly and promptly, exit 1, when the --model-command process exits at start', async () => {
    const input = join(dir, 'dies', 'in');
    await mkdir(input, { recursive: true });
    await writeFile(join(input, 'a.csv'), rows(1, 10));
    const file = join(dir, 'dies.json');
    await writeFile(
      file,
      JSON.stringify(job('dies', `file://${input}/`, `file://${join(dir, 'dies', 'out')}/`)),
    );
    const started = Date.now();
    const r = await runLocal(
      [
        'run',
        file,
        '--local',
        '--model-command',
        'node -e "console.error(\'no weights\'); process.exit(3)"',
        '--json',
      ],
      { timeoutMs: 60_000 },
    );
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(r.code).toBe(1);
    const result = lastJson(r);
    expect(result.TransformJobStatus).toBe('Failed');
    // SageMaker's category for a container that does not start (its "AlgorithmError: Model container
    // failed to respond to ping"), then our detail.
    expect(result.FailureReason).toMatch(/^AlgorithmError: Transform job "[^"]+": .*model/i);
    expect(result.FailureReason).toContain('exited with code 3');
    expect(result.FailureReason).toContain('no weights');
    expect(existsSync(join(dir, 'dies', 'out', 'a.csv.out'))).toBe(false);
  });

  it('fails the job naming the object when the model dies mid-job, leaving no partial output', async () => {
    const input = join(dir, 'midway', 'in');
    await mkdir(input, { recursive: true });
    await writeFile(join(input, 'a.csv'), rows(1, 5_000));
    const out = join(dir, 'midway', 'out');
    const file = join(dir, 'midway.json');
    await writeFile(
      file,
      JSON.stringify(
        job('midway', `file://${input}/`, `file://${out}/`, {
          MaxPayloadInMB: 1,
          BatchStrategy: 'SingleRecord',
        }),
      ),
    );
    const r = await runLocal(['run', file, '--local', '--model-command', TEST_MODEL, '--json'], {
      env: { TEST_MODEL_EXIT_AFTER_REQUESTS: '20' },
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(1);
    const result = lastJson(r);
    expect(result.TransformJobStatus).toBe('Failed');
    expect(result.FailureReason).toContain('a.csv');
    expect(existsSync(join(out, 'a.csv.out'))).toBe(false);
  });

  it('extracts --model-data into the directory the model loads from, and fails naming a bad artifact', async () => {
    const model = join(dir, 'artifacts');
    await mkdir(join(model, 'good'), { recursive: true });
    await mkdir(join(model, 'bad'), { recursive: true });
    const trained = await runNode(['containers/models/iris/train.ts', '--out', join(model, 'good')]);
    expect(trained.code, trained.output).toBe(0);
    await writeFile(join(model, 'bad', 'model.json'), JSON.stringify({ kind: 'not-a-model' }));
    await tar.c({ gzip: true, file: join(model, 'good.tar.gz'), cwd: join(model, 'good') }, ['model.json']);
    await tar.c({ gzip: true, file: join(model, 'bad.tar.gz'), cwd: join(model, 'bad') }, ['model.json']);

    const run = async (archive: string) => {
      const out = join(dir, 'artifacts', `out-${archive}`);
      const request = {
        ...job(`with-${archive}`, `file://${join(ROOT, 'examples/iris/input')}/`, `file://${out}/`),
        ModelName: 'iris',
        DataProcessing: { InputFilter: '$[1:]' },
      };
      const file = join(dir, `artifacts-${archive}.json`);
      await writeFile(file, JSON.stringify(request));
      const r = await runLocal(
        ['run', file, '--local', '--model-data', `file://${join(model, `${archive}.tar.gz`)}`, '--json'],
        { timeoutMs: 60_000 },
      );
      return { r, out };
    };
    const good = await run('good');
    expect(good.r.code, good.r.stderr).toBe(0);
    expect((await readFile(join(good.out, 'iris-1.csv.out'), 'utf8')).split('\n')[0]).toMatch(
      /^(setosa|versicolor|virginica),0\.\d+$/,
    );
    const bad = await run('bad');
    expect(bad.r.code).toBe(1);
    // The model process loaded the archive's model.json, refused it, and the reason says so.
    expect(lastJson(bad.r).FailureReason).toContain('model.json is not a usable model');
  });

  it('exits 2 and prints every problem as JSON for an invalid request', async () => {
    const file = join(dir, 'invalid.json');
    await writeFile(
      file,
      JSON.stringify({
        ...job('bad name!', 'file:///nowhere/', 'file:///nowhere/out/'),
        MaxPayloadInMB: 101,
      }),
    );
    const r = await runLocal(['run', file, '--local', '--model-command', TEST_MODEL, '--json']);
    expect(r.code).toBe(2);
    const result = lastJson(r);
    expect(result.TransformJobStatus).toBe('Invalid');
    const paths = result.Problems.map((p: { path: string }) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining(['TransformJobName', 'MaxPayloadInMB', 'TransformOutput.S3OutputPath']),
    );
  });

  it('exits 2 naming the problem for a --model-url that is not plain http://host:port', async () => {
    const file = join(dir, 'model-url.json');
    await writeFile(file, JSON.stringify(job('model-url', 'file:///nowhere/in/', 'file:///nowhere/out/')));
    const https = await runLocal(['run', file, '--local', '--model-url', 'https://127.0.0.1:8443']);
    expect(https.code).toBe(2);
    expect(https.stderr).toMatch(/--model-url "https:\/\/127\.0\.0\.1:8443" is not http:\/\/host:port/);
    const withPath = await runLocal(['run', file, '--local', '--model-url', 'http://127.0.0.1:8080/v1']);
    expect(withPath.code).toBe(2);
    expect(withPath.stderr).toMatch(/must be only http:\/\/host:port/);
  });

  it('fails a job whose input prefix holds nothing, saying so', async () => {
    const input = join(dir, 'empty', 'in');
    await mkdir(input, { recursive: true });
    const file = join(dir, 'empty.json');
    await writeFile(
      file,
      JSON.stringify(job('empty', `file://${input}/`, `file://${join(dir, 'empty', 'out')}/`)),
    );
    const r = await runLocal(['run', file, '--local', '--model-command', TEST_MODEL, '--json']);
    expect(r.code).toBe(1);
    expect(lastJson(r).FailureReason).toMatch(/no (input )?objects|empty/i);
  });

  describe('with s3:// locations on an S3-compatible endpoint', () => {
    let s3: S3Harness;
    beforeAll(async () => {
      s3 = await startS3Server({ buckets: ['data'] });
    });
    afterAll(async () => {
      await s3.stop();
    });

    it('reads and writes through --endpoint-url and leaves no multipart upload behind', async () => {
      await s3.seed('data', [
        ['in/x.csv', rows(1, 300)],
        ['in/sub/y.csv', rows(2, 40_000)],
      ]);
      const getText = async (key: string) =>
        (await s3.client.send(new GetObjectCommand({ Bucket: 'data', Key: key }))).Body!.transformToString();
      const file = join(dir, 's3.json');
      await writeFile(
        file,
        JSON.stringify(
          job('on-s3', 's3://data/in/', 's3://data/out/', {
            TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 2 },
          }),
        ),
      );
      const r = await runLocal(
        [
          'run',
          file,
          '--local',
          '--model-command',
          TEST_MODEL,
          '--endpoint-url',
          s3.endpoint,
          '--work-dir',
          's3://data/work/',
          '--json',
        ],
        {
          env: {
            TEST_MODEL_UPPERCASE: '1',
            AWS_ACCESS_KEY_ID: 'S3RVER',
            AWS_SECRET_ACCESS_KEY: 'S3RVER',
            AWS_REGION: 'us-east-1',
          },
          timeoutMs: 90_000,
        },
      );
      expect(r.code, r.stderr).toBe(0);
      expect(await getText('out/x.csv.out')).toBe(rows(1, 300).toUpperCase());
      expect(await getText('out/sub/y.csv.out')).toBe(rows(2, 40_000).toUpperCase());
      expect(await countIncompleteUploads(s3, 'data')).toBe(0);
      expect(lastJson(r).Progress.objectsCompleted).toBe(2);
    });
  });
});
