import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastJson, runCli, TEST_MODEL } from '../support/cli';
import { type MemoryS3, startMemoryS3 } from '../support/memory-s3';
import { makeTempDir, type TempDir } from '../support/tmp';

/**
 * `Extensions.ResumeFrom` in `batch-transform run --local`: real sidecars and model processes. A
 * first run fails on one object (the model answers 500 to its records), a second run with a healthy
 * model resumes from it, and its outputs are compared byte for byte with a clean run's.
 */

function rows(object: number, count: number, poison = -1): string {
  let s = '';
  for (let i = 0; i < count; i++) s += `${object},${i},${i === poison ? 'FAILME' : 'x'.repeat(i % 13)}\n`;
  return s;
}

function job(name: string, input: string, output: string, extra: Record<string, unknown> = {}) {
  return {
    TransformJobName: name,
    ModelName: 'test-model',
    BatchStrategy: 'MultiRecord',
    MaxPayloadInMB: 1,
    ModelClientConfig: { InvocationsMaxRetries: 0 },
    TransformInput: {
      DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: input } },
      ContentType: 'text/csv',
      SplitType: 'Line',
    },
    TransformOutput: { S3OutputPath: output, AssembleWith: 'Line' },
    TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 3 },
    Extensions: { ShardMinSizeInMB: 1 },
    ...extra,
  };
}

async function readTree(dir: string): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile())
      out[join(entry.parentPath, entry.name).slice(dir.length + 1)] = await readFile(
        join(entry.parentPath, entry.name),
      );
  }
  return out;
}

describe('run --local with Extensions.ResumeFrom', () => {
  let tmp: TempDir;
  let s3: MemoryS3;
  beforeAll(async () => {
    tmp = await makeTempDir('local-resume');
    s3 = await startMemoryS3({ buckets: ['data'] });
  });
  afterAll(async () => {
    await s3.stop();
    await tmp.remove();
  });

  /** Runs a job file; `failing` makes the model answer 500 to every request with a FAILME record. */
  const run = async (request: object, opts: { failing?: boolean; args?: readonly string[] } = {}) => {
    const file = join(tmp.path, `${(request as { TransformJobName: string }).TransformJobName}.json`);
    await writeFile(file, JSON.stringify(request));
    return runCli(
      [
        'run',
        file,
        '--local',
        '--model-command',
        TEST_MODEL,
        '--json',
        ...(opts.args ?? ['--work-dir', join(tmp.path, 'work')]),
      ],
      {
        env: {
          TEST_MODEL_UPPERCASE: '1',
          ...(opts.failing ? { TEST_MODEL_FAIL_MARKER: 'FAILME' } : {}),
          AWS_ACCESS_KEY_ID: 'memory',
          AWS_SECRET_ACCESS_KEY: 'memory',
          AWS_REGION: 'us-east-1',
        },
        timeoutMs: 120_000,
      },
    );
  };

  it('after a fault, writes only the failed object again, and the outputs equal a clean run byte for byte', async () => {
    const input = join(tmp.path, 'in');
    await mkdir(join(input, 'sub'), { recursive: true });
    await writeFile(join(input, 'a.csv'), rows(1, 50));
    await writeFile(join(input, 'sub', 'b.csv'), rows(2, 3_000));
    await writeFile(join(input, 'poisoned.csv'), rows(3, 200, 150));
    // Big enough to be cut into shards (2.5 MB at ShardMinSizeInMB 1); its output is assembled from them.
    await writeFile(join(input, 'big.csv'), rows(4, 160_000));
    const at = (out: string) => [`file://${input}/`, `file://${join(tmp.path, out)}/`] as const;

    const first = await run(job('first', ...at('out')), { failing: true });
    expect(first.code).toBe(1);
    expect(lastJson(first).TransformJobStatus).toBe('Failed');
    const plan = JSON.parse(await readFile(join(tmp.path, 'work', 'first', 'plan.json'), 'utf8'));
    expect(plan.objects.find((o: { relativeKey: string }) => o.relativeKey === 'big.csv').shardCount).toBe(2);
    expect(Object.keys(await readTree(join(tmp.path, 'out'))).sort()).toEqual([
      'a.csv.out',
      'big.csv.out',
      'sub/b.csv.out',
    ]);

    const resumed = await run(
      job('second', ...at('out'), { Extensions: { ShardMinSizeInMB: 1, ResumeFrom: 'first' } }),
    );
    expect(resumed.code, resumed.stderr).toBe(0);
    const summary = lastJson(resumed);
    expect(summary.TransformJobStatus).toBe('Completed');
    expect(summary.Progress).toMatchObject({
      objectsTotal: 4,
      objectsCompleted: 1,
      objectsCompletedEarlier: 3,
    });
    // Only the poisoned object's records went to the model.
    expect(summary.Progress.records).toBe(200);
    expect(resumed.stderr + resumed.stdout).toMatch(
      /1 completed, 0 failed, 0 skipped, 3 completed earlier \(kept\), of 4/,
    );

    const clean = await run(job('clean', ...at('clean-out')));
    expect(clean.code, clean.stderr).toBe(0);
    const [resumedFiles, cleanFiles] = [
      await readTree(join(tmp.path, 'out')),
      await readTree(join(tmp.path, 'clean-out')),
    ];
    expect(Object.keys(resumedFiles).sort()).toEqual(Object.keys(cleanFiles).sort());
    for (const [name, bytes] of Object.entries(cleanFiles))
      expect(resumedFiles[name]!.equals(bytes), name).toBe(true);
    expect(cleanFiles['poisoned.csv.out']!.toString()).toBe(rows(3, 200, 150).toUpperCase());

    // Resuming from a job that completed everything runs no object and succeeds.
    const again = await run(
      job('third', ...at('out'), { Extensions: { ShardMinSizeInMB: 1, ResumeFrom: 'second' } }),
    );
    expect(again.code, again.stderr).toBe(0);
    expect(lastJson(again).Progress).toMatchObject({
      objectsCompleted: 0,
      objectsCompletedEarlier: 4,
      records: 0,
    });
    expect(await readTree(join(tmp.path, 'out'))).toEqual(resumedFiles);
  });

  it('resumes on s3:// locations through the SDK, with the work location on S3', async () => {
    s3.seed('data', [
      ['in/a.csv', rows(1, 40)],
      ['in/p.csv', rows(2, 40, 7)],
      ...Array.from({ length: 80 }, (_, i) => [`in/many/m${i}.csv`, rows(10 + i, 3)] as const),
    ]);
    const args = ['--endpoint-url', s3.endpoint, '--work-dir', 's3://data/work/'];
    const first = await run(job('s3-first', 's3://data/in/', 's3://data/out/'), { failing: true, args });
    expect(first.code).toBe(1);
    const resumed = await run(
      job('s3-second', 's3://data/in/', 's3://data/out/', {
        Extensions: { ShardMinSizeInMB: 1, ResumeFrom: 's3-first' },
      }),
      { args },
    );
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(lastJson(resumed).Progress).toMatchObject({ objectsCompleted: 1, objectsCompletedEarlier: 81 });
    expect(s3.objectBytes('data', 'out/p.csv.out')!.toString()).toBe(rows(2, 40, 7).toUpperCase());

    const refused = await run(
      job('s3-third', 's3://data/in/', 's3://data/out/', { Extensions: { ResumeFrom: 'no-such-job' } }),
      { args },
    );
    expect(refused.code).toBe(2);
    expect(refused.stdout + refused.stderr).toMatch(/Extensions\.ResumeFrom/);
  });
});
