import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/cli';
import { makeTempDir, type TempDir } from '../support/tmp';
import { awsCliMissing, boto3Missing, clientEnv, type RunningApi, run, startApi } from './server';

/**
 * `batch-transform api --local` driven by real SageMaker clients: boto3 (python3) and the AWS CLI,
 * pointed at the server by AWS_ENDPOINT_URL_SAGEMAKER, with dummy credentials. Two servers: one
 * started with the exact command line (`--model-command "python3 model.py"`), one without a
 * model command (only the example models run there, so a missing model is missing).
 */

const SCENARIOS = join(ROOT, 'test', 'api', 'boto3_scenarios.py');
const missingBoto3 = boto3Missing();
const missingAwsCli = awsCliMissing();
if (missingBoto3) console.warn(`test/api/boto3.test.ts skipped: ${missingBoto3}`);
else if (missingAwsCli) console.warn(`test/api/boto3.test.ts: the AWS CLI case is skipped: ${missingAwsCli}`);

// biome-ignore lint/suspicious/noExplicitAny: the tests read fields of JSON documents they assert on
type Json = Record<string, any>;

describe.skipIf(missingBoto3 !== undefined)('batch-transform api with boto3 and the AWS CLI', () => {
  let tmp: TempDir;
  let withCommand: RunningApi;
  let examplesOnly: RunningApi;
  let input: string;

  const boto3 = async (api: RunningApi, scenario: string, args: Json): Promise<Json> => {
    const out = await run('python3', [SCENARIOS, scenario, JSON.stringify(args)], clientEnv(api.url));
    return JSON.parse(out.trim().split('\n').pop()!);
  };
  const outputs = async (dir: string) => {
    const out: Record<string, string> = {};
    for (const f of await readdir(dir)) out[f] = await readFile(join(dir, f), 'utf8');
    return out;
  };

  beforeAll(async () => {
    tmp = await makeTempDir('bt-api');
    // The user's folder: their model.py, where they start the server.
    const project = join(tmp.path, 'project');
    await mkdir(project);
    await writeFile(join(project, 'model.py'), await readFile(join(ROOT, 'test/api/model.py')));
    input = join(tmp.path, 'input');
    await mkdir(input);
    await writeFile(join(input, 'rows.csv'), Array.from({ length: 10 }, (_, i) => `row${i},a,b\n`).join(''));
    [withCommand, examplesOnly] = await Promise.all([
      startApi(['--model-command', 'python3 model.py'], { cwd: project }),
      startApi([]),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([withCommand?.stop(), examplesOnly?.stop()]);
    await tmp?.remove();
  });

  it("runs the seed's create_transform_job request unchanged, then its waiter and describe_transform_job", async () => {
    const irisInput = join(tmp.path, 'iris');
    await mkdir(irisInput);
    // Four measurements per row, no id: what the iris example model takes as text/csv.
    await writeFile(join(irisInput, 'flowers.csv'), '5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n5.9,3.0,4.2,1.5\n');
    const r = await boto3(examplesOnly, 'seed', {
      name: 'seed-request',
      input: `file://${irisInput}/`,
      output: `file://${tmp.path}/seed-output/`,
    });
    expect(r.created.TransformJobArn).toBe(
      'arn:aws:sagemaker:us-east-1:000000000000:transform-job/seed-request',
    );
    expect(r.waited).toBe('success');
    const d = r.described;
    expect(d).toMatchObject({
      TransformJobName: 'seed-request',
      TransformJobArn: 'arn:aws:sagemaker:us-east-1:000000000000:transform-job/seed-request',
      TransformJobStatus: 'Completed',
      ModelName: 'iris',
      MaxPayloadInMB: 1,
      BatchStrategy: 'MultiRecord',
      MaxConcurrentTransforms: 2,
      Environment: {},
      ModelClientConfig: { InvocationsTimeoutInSeconds: 600, InvocationsMaxRetries: 3 },
      TransformInput: {
        DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `file://${irisInput}/` } },
        ContentType: 'text/csv',
        SplitType: 'Line',
        CompressionType: 'None',
      },
      TransformOutput: { S3OutputPath: `file://${tmp.path}/seed-output/`, AssembleWith: 'None' },
      TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
      DataProcessing: { InputFilter: '$', OutputFilter: '$', JoinSource: 'None' },
    });
    expect(d).not.toHaveProperty('FailureReason');
    // botocore parsed the epoch-second timestamps as datetimes, in order.
    const [created, started, ended] = [d.CreationTime, d.TransformStartTime, d.TransformEndTime].map(
      (t: { datetime: number }) => t.datetime,
    );
    expect(created).toBeLessThanOrEqual(started);
    expect(started).toBeLessThanOrEqual(ended);
    expect(Math.abs(Date.now() / 1000 - ended)).toBeLessThan(120);
    const out = await outputs(join(tmp.path, 'seed-output'));
    expect(Object.keys(out)).toEqual(['flowers.csv.out']);
    expect(out['flowers.csv.out']!.split('\n').map((l) => l.split(',')[0])).toEqual(
      expect.arrayContaining(['setosa', 'virginica', 'versicolor']),
    );
  });

  it("create_model with an image that can't run here: the model command serves it with the model's Environment and ModelDataUrl artifacts", async () => {
    const artifacts = join(tmp.path, 'artifacts');
    await mkdir(artifacts);
    await writeFile(join(artifacts, 'prefix.txt'), 'v7\n');
    await tar.c({ gzip: true, file: join(tmp.path, 'model.tar.gz'), cwd: artifacts }, ['prefix.txt']);
    const r = await boto3(withCommand, 'model-then-job', {
      model: 'my-model',
      modelData: `file://${tmp.path}/model.tar.gz`,
      name: 'created-model-job',
      input: `file://${input}/`,
      output: `file://${tmp.path}/model-output/`,
    });
    expect(r.created.ModelArn).toBe('arn:aws:sagemaker:us-east-1:000000000000:model/my-model');
    expect(r.describedModel).toMatchObject({
      ModelName: 'my-model',
      ModelArn: 'arn:aws:sagemaker:us-east-1:000000000000:model/my-model',
      PrimaryContainer: { Image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/my-model:1' },
      ExecutionRoleArn: 'arn:aws:iam::123456789012:role/SageMakerRole',
      CreationTime: { datetime: expect.any(Number) },
    });
    expect(r.models.map((m: Json) => m.ModelName)).toEqual(['my-model']);
    expect(r.waited).toBe('success');
    expect(r.described.TransformJobStatus).toBe('Completed');
    // The negotiated parameters in force (the model has no /execution-parameters: the defaults).
    expect(r.described).toMatchObject({
      MaxConcurrentTransforms: 1,
      MaxPayloadInMB: 6,
      BatchStrategy: 'MultiRecord',
    });
    const out = await outputs(join(tmp.path, 'model-output'));
    // Upper-cased: the model's Environment reached it; `v7:`: its ModelDataUrl was extracted for it.
    expect(out['rows.csv.out']!.split('\n').slice(0, 2)).toEqual(['v7:ROW0,A,B', 'v7:ROW1,A,B']);
    expect(r.deleted).toEqual({});
    expect(r.afterDelete).toEqual({
      code: 'ValidationException',
      message: 'Could not find model "arn:aws:sagemaker:us-east-1:000000000000:model/my-model".',
    });
  });

  it('list_transform_jobs pages one job at a time with its paginator (MaxResults=1), and filters and sorts', async () => {
    const r = await boto3(withCommand, 'pagination', {
      prefix: 'paged',
      input: `file://${input}/`,
      output: `file://${tmp.path}/paged-output/`,
    });
    expect(r.first.TransformJobSummaries).toHaveLength(1);
    expect(r.first.NextToken).toEqual(expect.any(String));
    expect(r.first.TransformJobSummaries[0]).toMatchObject({
      TransformJobName: 'paged-2',
      TransformJobArn: 'arn:aws:sagemaker:us-east-1:000000000000:transform-job/paged-2',
      TransformJobStatus: 'Completed',
      CreationTime: { datetime: expect.any(Number) },
      LastModifiedTime: { datetime: expect.any(Number) },
      TransformEndTime: { datetime: expect.any(Number) },
    });
    // Newest first (CreationTime, Descending: the defaults), one per page, none twice.
    expect(r.paged).toEqual([['paged-2'], ['paged-1'], ['paged-0']]);
    expect(r.byName).toEqual(['paged-0', 'paged-1', 'paged-2']);
    expect(r.completed).toHaveLength(3);
    expect(r.failed).toEqual([]);
    expect(r.times).toEqual({
      createdAfterLater: [],
      createdAfterEarlier: ['paged-2', 'paged-1', 'paged-0'],
      createdBeforeEarlier: [],
      modifiedBeforeLater: ['paged-2', 'paged-1', 'paged-0'],
      modifiedAfterLater: [],
    });
  });

  it('stop_transform_job on a running job: Stopping at once, then Stopped', async () => {
    const r = await boto3(withCommand, 'stop', {
      name: 'slow-job',
      input: `file://${input}/`,
      output: `file://${tmp.path}/stop-output/`,
    });
    expect(r.rightAfter).toBe('Stopping');
    expect(r.waited).toBe('success');
    expect(r.described.TransformJobStatus).toBe('Stopped');
    expect(r.described.TransformEndTime).toEqual({ datetime: expect.any(Number) });
    // Stopping a job that has ended changes nothing.
    expect(r.stopAgain).toEqual({});
  });

  it('answers a used name, a missing job or model and an invalid request with SageMaker error codes', async () => {
    const r = await boto3(withCommand, 'errors', {
      name: 'errors-job',
      input: `file://${input}/`,
      output: `file://${tmp.path}/errors-output/`,
    });
    expect(r.duplicate.code).toBe('ResourceInUse');
    expect(r.duplicate.message).toContain('transform-job/errors-job');
    expect(r.describeMissing).toEqual({
      code: 'ValidationException',
      message:
        'Could not find transform job "arn:aws:sagemaker:us-east-1:000000000000:transform-job/no-such-job".',
    });
    expect(r.stopMissing.code).toBe('ResourceNotFound');
    expect(r.describeModelMissing.code).toBe('ValidationException');
    expect(r.describeModelMissing.message).toMatch(
      /^Could not find model "arn:aws:sagemaker:.*:model\/no-such-model"\.$/,
    );
    expect(r.deleteModelMissing.code).toBe('ValidationException');
    // Every problem, each with its field path.
    expect(r.invalid.code).toBe('ValidationException');
    for (const path of [
      'MaxPayloadInMB',
      'TransformInput.DataSource.S3DataSource.S3Uri',
      'TransformInput.SplitType',
    ])
      expect(r.invalid.message).toContain(`- ${path}:`);
    expect(r.invalidNameStaysFree.code).toBe('ValidationException');
    // The waiter gives up at once on a job that does not exist (its ValidationException acceptor).
    expect(r.waiterOnMissing).toMatch(/^failure: .*ValidationException/);
    expect(r.modelDuplicate.code).toBe('ValidationException');
    expect(r.modelDuplicate.message).toContain('Cannot create already existing model');
    expect(r.modelPipeline.code).toBe('ValidationException');
    expect(r.modelPipeline.message).toContain('Containers');
  });

  it('without --model-command, a job for a model that does not exist, or whose image cannot run here, is refused', async () => {
    const r = await boto3(examplesOnly, 'missing-model', {
      name: 'orphan-job',
      input: `file://${input}/`,
      output: `file://${tmp.path}/orphan-output/`,
    });
    expect(r.createJob).toEqual({
      code: 'ValidationException',
      message: 'Could not find model "arn:aws:sagemaker:us-east-1:000000000000:model/any-model".',
    });
    expect(r.createdModelImage.code).toBe('ValidationException');
    expect(r.createdModelImage.message).toContain('--model-command');
  });

  it.skipIf(missingAwsCli !== undefined)(
    'aws sagemaker describe-transform-job --endpoint-url reads a job',
    async () => {
      const out = await run(
        'aws',
        [
          'sagemaker',
          'describe-transform-job',
          '--transform-job-name',
          'seed-request',
          '--endpoint-url',
          examplesOnly.url,
          '--output',
          'json',
        ],
        clientEnv(examplesOnly.url),
      );
      const d = JSON.parse(out);
      expect(d).toMatchObject({
        TransformJobName: 'seed-request',
        TransformJobStatus: 'Completed',
        ModelName: 'iris',
      });
      const listed = JSON.parse(
        await run(
          'aws',
          ['sagemaker', 'list-transform-jobs', '--endpoint-url', examplesOnly.url, '--output', 'json'],
          clientEnv(examplesOnly.url),
        ),
      );
      expect(listed.TransformJobSummaries.map((s: Json) => s.TransformJobName)).toContain('seed-request');
    },
  );

  it('SIGTERM stops the running jobs (they end Stopped), then the server exits 0', async () => {
    const r = await boto3(withCommand, 'started', {
      name: 'running-at-exit',
      input: `file://${input}/`,
      output: `file://${tmp.path}/exit-output/`,
    });
    expect(r.status).toBe('InProgress');
    const ended = await withCommand.stop();
    expect(ended).toEqual({ code: 0, signal: null });
    const log = withCommand.log();
    expect(log).toContain('SIGTERM: stopping running jobs');
    expect(log).toContain('transform job running-at-exit: Stopping');
    expect(log).toContain('transform job running-at-exit: Stopped');
  });
});
