import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, runCli, TEST_MODEL, lastJson } from '../support/cli';
import { type S3Harness, startS3Server } from '../support/s3-server';
import { makeTempDir, type TempDir } from '../support/tmp';

/**
 * DataCaptureConfig in `batch-transform run --local` (real sidecars and model processes): once the
 * job completes, `<DestinationS3Uri>/input/` and `/output/` hold a manifest each under the start
 * hour's `yyyy/mm/dd/hh/`, naming the input objects and their `.out` objects (SageMaker's batch
 * capture layout, docs/JOB.md). A job that fails captures nothing.
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
    TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 2 },
    ...extra,
  };
}

/** `yyyy/mm/dd/hh/` of the job's start time, in UTC, as SageMaker labels captured data. */
function hourOf(r: CliResult): string {
  const [date, time] = (lastJson(r).TransformStartTime as string).split('T');
  return `${date!.replaceAll('-', '/')}/${time!.slice(0, 2)}/`;
}

describe('run --local with DataCaptureConfig', () => {
  let tmp: TempDir;
  beforeAll(async () => {
    tmp = await makeTempDir('local-capture');
  });
  afterAll(async () => {
    await tmp.remove();
  });

  const run = async (
    request: { TransformJobName: string },
    opts: { failing?: boolean; args?: readonly string[]; env?: Record<string, string> } = {},
  ) => {
    const file = join(tmp.path, `${request.TransformJobName}.json`);
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
          ...(opts.failing ? { TEST_MODEL_FAIL_MARKER: 'FAILME' } : {}),
          ...opts.env,
        },
        timeoutMs: 120_000,
      },
    );
  };

  it('writes input and output manifests under the start hour, listing every object relative to its prefix', async () => {
    const input = join(tmp.path, 'in');
    await mkdir(join(input, 'sub'), { recursive: true });
    await writeFile(join(input, 'a.csv'), rows(1, 50));
    await writeFile(join(input, 'sub', 'b.csv'), rows(2, 300));
    const out = join(tmp.path, 'out');
    const capture = join(tmp.path, 'capture');
    const r = await run(
      job('captured', `file://${input}/`, `file://${out}/`, {
        DataCaptureConfig: { DestinationS3Uri: `file://${capture}` },
      }),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r).TransformJobStatus).toBe('Completed');
    expect(lastJson(r)).not.toHaveProperty('IgnoredFields');
    const hour = hourOf(r);
    expect(await readFile(join(capture, 'input', hour, 'captured.jsonl'), 'utf8')).toBe(
      `[{"prefix":"file://${input}/"},"a.csv","sub/b.csv"]\n`,
    );
    expect(await readFile(join(capture, 'output', hour, 'captured.jsonl'), 'utf8')).toBe(
      `[{"prefix":"file://${out}/"},"a.csv.out","sub/b.csv.out"]\n`,
    );
    // Manifests, not copies: what they name is where the job put it.
    expect(existsSync(join(out, 'sub', 'b.csv.out'))).toBe(true);
  });

  it('GenerateInferenceId appends a unique UUID and the one job start time to every output record', async () => {
    const input = join(tmp.path, 'id-in');
    await mkdir(input, { recursive: true });
    await writeFile(join(input, 'a.csv'), rows(1, 40));
    await writeFile(join(input, 'b.csv'), rows(2, 400));
    const out = join(tmp.path, 'id-out');
    const r = await run(
      job('inference-ids', `file://${input}/`, `file://${out}/`, {
        DataCaptureConfig: {
          DestinationS3Uri: `file://${join(tmp.path, 'id-capture')}`,
          GenerateInferenceId: true,
        },
      }),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r).TransformJobStatus).toBe('Completed');
    const re =
      /^(.*),([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}),(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$/;
    const ids = new Set<string>();
    const times = new Set<string>();
    for (const [name, object, count] of [
      ['a.csv', 1, 40],
      ['b.csv', 2, 400],
    ] as const) {
      const lines = (await readFile(join(out, `${name}.out`), 'utf8')).split('\n');
      expect(lines.pop()).toBe('');
      // The echo model answers each row with itself: the row, then the two appended fields.
      expect(lines.map((l) => re.exec(l)?.[1])).toEqual(rows(object, count).split('\n').slice(0, -1));
      for (const l of lines) {
        const [, , id, time] = re.exec(l)!;
        ids.add(id!);
        times.add(time!);
      }
    }
    expect(ids.size).toBe(440);
    // One time for the whole job (both instances), the job's start to the second.
    expect(times.size).toBe(1);
    const [time] = [...times];
    const start = Date.parse(lastJson(r).TransformStartTime as string);
    expect(Math.abs(Date.parse(time!) - start)).toBeLessThan(60_000);
  });

  it("for a ManifestFile input, the input manifest has the manifest's own prefix and entries", async () => {
    const data = join(tmp.path, 'm-data');
    await mkdir(join(data, 'd'), { recursive: true });
    await writeFile(join(data, 'd', 'one.csv'), rows(1, 20));
    await writeFile(join(data, 'two.csv'), rows(2, 20));
    await writeFile(join(data, 'not-listed.csv'), rows(3, 20));
    const manifest = join(tmp.path, 'inputs.manifest');
    await writeFile(manifest, JSON.stringify([{ prefix: `file://${data}/` }, 'two.csv', 'd/one.csv']));
    const out = join(tmp.path, 'm-out');
    const capture = join(tmp.path, 'm-capture');
    const request = job('from-manifest', `file://${manifest}`, `file://${out}/`, {
      DataCaptureConfig: { DestinationS3Uri: `file://${capture}/` },
    });
    request.TransformInput.DataSource.S3DataSource.S3DataType = 'ManifestFile';
    const r = await run(request);
    expect(r.code, r.stderr).toBe(0);
    const hour = hourOf(r);
    expect(await readFile(join(capture, 'input', hour, 'from-manifest.jsonl'), 'utf8')).toBe(
      `[{"prefix":"file://${data}/"},"two.csv","d/one.csv"]\n`,
    );
    expect(await readFile(join(capture, 'output', hour, 'from-manifest.jsonl'), 'utf8')).toBe(
      `[{"prefix":"file://${out}/"},"two.csv.out","d/one.csv.out"]\n`,
    );
  });

  it('a job that fails writes no capture manifests', async () => {
    const input = join(tmp.path, 'f-in');
    await mkdir(input, { recursive: true });
    await writeFile(join(input, 'ok.csv'), rows(1, 20));
    await writeFile(join(input, 'poisoned.csv'), rows(2, 20, 5));
    const capture = join(tmp.path, 'f-capture');
    const r = await run(
      job('fails', `file://${input}/`, `file://${join(tmp.path, 'f-out')}/`, {
        DataCaptureConfig: { DestinationS3Uri: `file://${capture}/` },
      }),
      { failing: true },
    );
    expect(r.code).toBe(1);
    expect(lastJson(r).TransformJobStatus).toBe('Failed');
    expect(existsSync(capture)).toBe(false);
  });

  it('a manifest that cannot be written fails the job with a ClientError naming the destination', async () => {
    const input = join(tmp.path, 'w-in');
    await mkdir(input, { recursive: true });
    await writeFile(join(input, 'a.csv'), rows(1, 20));
    // A file where the destination's folder should be: nothing can be written under it.
    const blocked = join(tmp.path, 'blocked');
    await writeFile(blocked, 'not a folder');
    const r = await run(
      job('unwritable', `file://${input}/`, `file://${join(tmp.path, 'w-out')}/`, {
        DataCaptureConfig: { DestinationS3Uri: `file://${blocked}/capture/` },
      }),
    );
    expect(r.code).toBe(1);
    expect(lastJson(r).TransformJobStatus).toBe('Failed');
    expect(lastJson(r).FailureReason).toMatch(
      /^ClientError: .*DataCaptureConfig\.DestinationS3Uri: could not write the data capture manifests under file:\/\//,
    );
  });

  describe('with s3:// locations on an S3-compatible endpoint', () => {
    let s3: S3Harness;
    beforeAll(async () => {
      s3 = await startS3Server({ buckets: ['data', 'monitor'] });
    });
    afterAll(async () => {
      await s3.stop();
    });

    it('writes the manifests to the destination bucket with SSE-KMS under DataCaptureConfig.KmsKeyId', async () => {
      await s3.seed('data', [
        ['in/x.csv', rows(1, 30)],
        ['in/sub/y.csv', rows(2, 30)],
      ]);
      const sse: Array<{ key: string; kms: unknown; mode: unknown }> = [];
      s3.faults.set((req) => {
        if (req.bucket === 'monitor' && req.method === 'PUT')
          sse.push({
            key: req.key,
            mode: req.headers['x-amz-server-side-encryption'],
            kms: req.headers['x-amz-server-side-encryption-aws-kms-key-id'],
          });
        return undefined;
      });
      const r = await run(
        job('on-s3', 's3://data/in/', 's3://data/out/', {
          DataCaptureConfig: { DestinationS3Uri: 's3://monitor/capture', KmsKeyId: 'alias/capture' },
        }),
        {
          args: ['--endpoint-url', s3.endpoint, '--work-dir', 's3://data/work/'],
          env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' },
        },
      );
      s3.faults.clear();
      expect(r.code, r.stderr).toBe(0);
      const hour = hourOf(r);
      const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: 'monitor' }));
      expect(listed.Contents?.map((o) => o.Key)).toEqual([
        `capture/input/${hour}on-s3.jsonl`,
        `capture/output/${hour}on-s3.jsonl`,
      ]);
      const text = async (key: string) =>
        (
          await s3.client.send(new GetObjectCommand({ Bucket: 'monitor', Key: key }))
        ).Body!.transformToString();
      expect(await text(`capture/input/${hour}on-s3.jsonl`)).toBe(
        '[{"prefix":"s3://data/in/"},"sub/y.csv","x.csv"]\n',
      );
      expect(await text(`capture/output/${hour}on-s3.jsonl`)).toBe(
        '[{"prefix":"s3://data/out/"},"sub/y.csv.out","x.csv.out"]\n',
      );
      expect(sse).toEqual([
        { key: `capture/input/${hour}on-s3.jsonl`, mode: 'aws:kms', kms: 'alias/capture' },
        { key: `capture/output/${hour}on-s3.jsonl`, mode: 'aws:kms', kms: 'alias/capture' },
      ]);
    });
  });
});
