import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expandPlaceholders, scheduledJobName } from '../../src/job/placeholders';
import { cleanupStage } from '../../src/lifecycle/cleanup';
import { describeStateFailure, finalizeStage } from '../../src/lifecycle/finalize';
import { writeJson } from '../../src/storage/json';
import { PlanError, planStage } from '../../src/lifecycle/plan';
import type { DeploymentContext } from '../../src/contract/deployment';
import { modelEnvironmentFor, validateStage } from '../../src/lifecycle/validate';
import { validateRequest } from '../../src/job/validate';
import { JobValidationError } from '../../src/job/problems';
import { progressUri, resultUri } from '../../src/contract/layout';
import { readReports } from '../../src/lifecycle/reports';
import type { Plan } from '../../src/contract/plan';
import { emptyCounters, type PartitionResult } from '../../src/contract/results';
import { FileStorage } from '../../src/storage/file';
import { makeTempDir, type TempDir } from '../support/tmp';

let dir: TempDir;
const storage = new FileStorage();

beforeEach(async () => {
  dir = await makeTempDir('stages');
  await mkdir(join(dir.path, 'in', 'sub'), { recursive: true });
});
afterEach(() => dir.remove());

function request(name = 'job-1', extra: Record<string, unknown> = {}) {
  return {
    TransformJobName: name,
    ModelName: 'iris',
    Environment: { THREADS: '2' },
    BatchStrategy: 'MultiRecord',
    MaxPayloadInMB: 1,
    TransformInput: {
      DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `${dir.uri}in/` } },
      ContentType: 'text/csv',
      SplitType: 'Line',
    },
    TransformOutput: { S3OutputPath: `${dir.uri}out/` },
    TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 2 },
    ...extra,
  };
}

const deployed = (): DeploymentContext => ({
  models: { iris: { environment: { THREADS: '1', MODEL_SETTING: 'x' } } },
  enabledInstanceTypes: [],
  maxInstanceCount: 100,
  workRoot: `${dir.uri}work/`,
  jobNamesRoot: `${dir.uri}job-names/`,
  // file:// locations stand in for S3 here; the deployed checks (names, overrides) are what is tested.
  local: false,
});

describe('the validate stage', () => {
  it('stores the normalized job and returns a small reference with the model environment', async () => {
    const ref = await validateStage(
      { request: request(), executionName: 'job-1' },
      { ...deployed(), local: true },
      storage,
    );
    expect(ref.jobUri).toBe(`${dir.uri}work/job-1/job.json`);
    expect(await storage.head(ref.jobUri)).toBeDefined();
    // The job's Environment overrides the model's; the batch variables are SageMaker's.
    expect(Object.fromEntries(ref.modelEnvironment.map((e) => [e.Name, e.Value]))).toEqual({
      THREADS: '2',
      MODEL_SETTING: 'x',
      SAGEMAKER_BATCH: 'true',
      SAGEMAKER_MAX_PAYLOAD_IN_MB: '1',
      SAGEMAKER_BATCH_STRATEGY: 'MULTI_RECORD',
    });
    expect(JSON.stringify(ref).length).toBeLessThan(4096);
    expect(ref.tags).toEqual([]);
  });

  it("carries the request's Tags in the reference, for RunTask to put on the job's tasks", async () => {
    const tags = [
      { Key: 'team', Value: 'search' },
      { Key: 'cost-centre', Value: '' },
    ];
    const ref = await validateStage(
      { request: request('tagged', { Tags: tags }) },
      { ...deployed(), local: true },
      storage,
    );
    expect(ref.tags).toEqual(tags);
  });

  it('the model sees SAGEMAKER_BATCH_STRATEGY as in force: SplitType None sends single records', () => {
    const job = validateRequest(
      request('job-none', {
        TransformInput: { ...request().TransformInput, SplitType: 'None' },
        MaxConcurrentTransforms: 2,
      }),
      { local: true },
    );
    const env = Object.fromEntries(modelEnvironmentFor(job, {}).map((e) => [e.Name, e.Value]));
    expect(env).toMatchObject({
      SAGEMAKER_BATCH: 'true',
      SAGEMAKER_BATCH_STRATEGY: 'SINGLE_RECORD',
      SAGEMAKER_MAX_PAYLOAD_IN_MB: '1',
      SAGEMAKER_MAX_CONCURRENT_TRANSFORMS: '2',
    });
  });

  it('refuses a second job with a taken name, and lets the same execution retry', async () => {
    const req = request();
    req.TransformInput.DataSource.S3DataSource.S3Uri = 's3://bucket/in/';
    req.TransformOutput.S3OutputPath = 's3://bucket/out/';
    await validateStage({ request: req, executionName: 'job-1' }, deployed(), storage);
    await expect(
      validateStage({ request: req, executionName: 'job-1' }, deployed(), storage),
    ).resolves.toMatchObject({
      jobName: 'job-1',
    });
    await expect(validateStage({ request: req }, deployed(), storage)).rejects.toThrow(
      /^Job name must be unique within an AWS account and region, and a job with this name already exists \(transform-job\/job-1, created /,
    );
    await expect(
      validateStage(
        { request: req, executionName: '0f8fad5b-d9cb-469f-a165-70867728950e' },
        deployed(),
        storage,
      ),
    ).rejects.toMatchObject({
      name: 'ResourceInUse',
    });
  });

  it("keeps a name taken after the job's work location is gone (expired or cleaned up)", async () => {
    const req = request();
    req.TransformInput.DataSource.S3DataSource.S3Uri = 's3://bucket/in/';
    req.TransformOutput.S3OutputPath = 's3://bucket/out/';
    const ref = await validateStage({ request: req, executionName: 'job-1' }, deployed(), storage);
    await storage.delete(ref.jobUri);
    await expect(validateStage({ request: req }, deployed(), storage)).rejects.toMatchObject({
      name: 'ResourceInUse',
    });
  });

  it('rejects an execution named differently from the job, but accepts a console-generated name', async () => {
    const ctx = { ...deployed(), local: true };
    await expect(validateStage({ request: request(), executionName: 'other' }, ctx, storage)).rejects.toThrow(
      /the execution is named "other" but the request names the job "job-1"/,
    );
    await expect(
      validateStage(
        { request: request(), executionName: '0f8fad5b-d9cb-469f-a165-70867728950e' },
        ctx,
        storage,
      ),
    ).resolves.toMatchObject({ jobName: 'job-1' });
  });

  it('gives a scheduled run a unique name and expands time placeholders in locations', async () => {
    const req = request('nightly');
    req.TransformOutput.S3OutputPath = `${dir.uri}out/{{ScheduledTime:yyyy/MM/dd}}/`;
    const ref = await validateStage(
      { request: req, scheduledTime: '2026-11-22T03:00:00Z' },
      { ...deployed(), local: true },
      storage,
    );
    expect(ref.jobName).toBe('nightly-20261122030000');
    expect(ref.outputUri).toBe(`${dir.uri}out/2026/11/22/`);
  });

  it('rejects an Environment that would not fit ECS RunTask overrides', async () => {
    const big = Object.fromEntries(Array.from({ length: 2 }, (_, i) => [`BIG${i}`, 'x'.repeat(5000)]));
    const s3Like: DeploymentContext = { ...deployed(), local: false };
    const req = request('big', { Environment: big });
    req.TransformInput.DataSource.S3DataSource.S3Uri = 's3://bucket/in/';
    req.TransformOutput.S3OutputPath = 's3://bucket/out/';
    await expect(validateStage({ request: req }, s3Like, storage)).rejects.toThrow(/capped at 8 KiB/);
  });

  it('rejects a model the deployment does not declare', async () => {
    const req = request('j', { ModelName: 'unknown' });
    req.TransformInput.DataSource.S3DataSource.S3Uri = 's3://bucket/in/';
    req.TransformOutput.S3OutputPath = 's3://bucket/out/';
    await expect(validateStage({ request: req }, deployed(), storage)).rejects.toThrow(
      /no model named "unknown".*known models: iris/,
    );
  });
});

describe('time placeholders', () => {
  const t = new Date('2026-01-02T03:04:05Z');
  it.each([
    ['s3://b/{{ScheduledTime:yyyy/MM/dd}}/', 's3://b/2026/01/02/'],
    ['s3://b/{{ScheduledTime}}/', 's3://b/20260102T030405Z/'],
    ["s3://b/{{ScheduledTime:'day='dd}}/", 's3://b/day=02/'],
    ['s3://b/{{ ScheduledTime:HH-mm-ss }}/', 's3://b/03-04-05/'],
  ])('expands %s to %s', (template, expected) => {
    expect(expandPlaceholders(template, t)).toBe(expected);
  });

  it('keeps a long scheduled job name within 63 characters', () => {
    const name = scheduledJobName('a'.repeat(63), t);
    expect(name).toHaveLength(63);
    expect(name.endsWith('-20260102030405')).toBe(true);
  });
});

describe('the plan stage', () => {
  const ctx = () => ({ ...deployed(), local: true });

  it('lists the input with relative names and writes the plan', async () => {
    await writeFile(join(dir.path, 'in', 'a.csv'), '1\n2\n');
    await writeFile(join(dir.path, 'in', 'sub', 'b.csv'), '3\n');
    const ref = await validateStage({ request: request() }, ctx(), storage);
    const plan = await planStage(ref, storage);
    expect(plan).toMatchObject({ objectCount: 2, totalBytes: 6, shardedObjectCount: 0 });
    expect(plan.partitions).toEqual([{ index: 0 }, { index: 1 }]);
    const stored = JSON.parse((await storage.readAll(plan.planUri)).toString()) as Plan;
    expect(stored.objects.map((o) => o.relativeKey)).toEqual(['a.csv', 'sub/b.csv']);
  });

  it("with the deployment's output locations, refuses a DataCaptureConfig destination outside them by its field path, before any task runs", async () => {
    await writeFile(join(dir.path, 'in', 'a.csv'), '1\n');
    const roots = [`${dir.uri}out/`, `${dir.uri}monitor/`];
    const stored = async (name: string, dest: string) =>
      validateStage(
        { request: request(name, { DataCaptureConfig: { DestinationS3Uri: dest } }) },
        ctx(),
        storage,
      );
    const outside = await stored('cap-1', `${dir.uri}elsewhere/capture/`);
    const refused = await planStage(outside, storage, { outputRoots: roots }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(JobValidationError);
    expect((refused as JobValidationError).problems).toEqual([
      {
        path: 'DataCaptureConfig.DestinationS3Uri',
        message: expect.stringMatching(
          /^must lie under one of this deployment's output locations \(file:\/\//,
        ),
      },
    ]);
    expect(await storage.head(`${outside.workUri}plan.json`)).toBeUndefined();
    // Under an output location, written without its trailing slash too; and with no locations given (local runs), anywhere.
    const inside = await stored('cap-2', `${dir.uri}monitor`);
    await expect(planStage(inside, storage, { outputRoots: roots })).resolves.toMatchObject({
      objectCount: 1,
    });
    const local = await stored('cap-3', `${dir.uri}elsewhere/capture/`);
    await expect(planStage(local, storage)).resolves.toMatchObject({ objectCount: 1 });
  });

  it('fails clearly on an empty input', async () => {
    const ref = await validateStage({ request: request() }, ctx(), storage);
    await expect(planStage(ref, storage)).rejects.toThrow(PlanError);
    await expect(planStage(ref, storage)).rejects.toThrow(/has no input: .*in\/ matched no objects/);
  });

  it('reads a manifest and names the objects it lists that do not exist', async () => {
    await writeFile(join(dir.path, 'in', 'a.csv'), '1\n');
    await writeFile(
      join(dir.path, 'manifest.json'),
      JSON.stringify([{ prefix: `${dir.uri}in/` }, 'a.csv', 'missing.csv']),
    );
    const req = request('m');
    req.TransformInput.DataSource.S3DataSource = {
      S3DataType: 'ManifestFile',
      S3Uri: `${dir.uri}manifest.json`,
    };
    const ref = await validateStage({ request: req }, ctx(), storage);
    await expect(planStage(ref, storage)).rejects.toThrow(
      /lists 1 object\(s\) that do not exist: .*missing\.csv/,
    );
  });

  it('rejects a manifest that is not the documented shape', async () => {
    await writeFile(join(dir.path, 'manifest.json'), JSON.stringify(['a.csv']));
    const req = request('m2');
    req.TransformInput.DataSource.S3DataSource = {
      S3DataType: 'ManifestFile',
      S3Uri: `${dir.uri}manifest.json`,
    };
    const ref = await validateStage({ request: req }, ctx(), storage);
    await expect(planStage(ref, storage)).rejects.toThrow(/first element is \{"prefix"/);
  });
});

describe('the finalize stage', () => {
  it('fails the job naming the failed object, its record offset and the cause', async () => {
    await writeFile(join(dir.path, 'in', 'a.csv'), '1\n');
    await writeFile(join(dir.path, 'in', 'b.csv'), '2\n');
    const ctx = { ...deployed(), local: true };
    const ref = await validateStage({ request: request() }, ctx, storage);
    const planRef = await planStage(ref, storage);
    const plan = JSON.parse((await storage.readAll(planRef.planUri)).toString()) as Plan;
    for (const p of plan.partitions) {
      const result: PartitionResult = {
        partition: p.index,
        startedAt: '2026-11-22T00:00:00.000Z',
        endedAt: '2026-11-22T00:00:01.000Z',
        effective: { MaxConcurrentTransforms: 1, BatchStrategy: 'MultiRecord', MaxPayloadInMB: 1 },
        items: p.items.map((i) => ({
          object: i.object,
          shard: i.shard,
          status:
            plan.objects[i.object]!.relativeKey === 'b.csv' ? ('Failed' as const) : ('Completed' as const),
          records: 1,
          failedRecords: 0,
          bytesIn: 2,
          bytesOut: 2,
          durationMs: 5,
          ...(plan.objects[i.object]!.relativeKey === 'b.csv'
            ? { error: { message: 'model answered HTTP 500', offset: 0 } }
            : {}),
        })),
        counters: { ...emptyCounters(), records: 1, bytesIn: 2 },
      };
      await writeJson(storage, resultUri(ref.workUri, p.index), result);
    }
    const d = await finalizeStage(ref, storage);
    expect(d.TransformJobStatus).toBe('Failed');
    expect(d.FailureReason).toMatch(
      /^ClientError: Transform job "job-1": 1 of 2 input object\(s\) failed: file:\/\/.*\/in\/b\.csv: model answered HTTP 500 \(record at byte 0\)/,
    );
    expect(d.Progress).toMatchObject({
      objectsTotal: 2,
      objectsCompleted: 1,
      objectsFailed: 1,
      records: 2,
      bytesIn: 4,
    });
    expect(d.FailureReason!.length).toBeLessThanOrEqual(1024);
  });

  it.each([
    {
      why: "the model's fatal failure",
      fatal: {
        fatal: 'worker 0: the model server did not answer GET /ping',
        fatalCategory: 'AlgorithmError',
      },
      failure: undefined,
      reason: 'AlgorithmError: Transform job "cat": worker 0: the model server did not answer GET /ping',
    },
    {
      why: "the worker's own crash",
      fatal: { fatal: 'worker 0: worker failed: boom', fatalCategory: 'InternalServerError' },
      failure: undefined,
      reason: 'InternalServerError: Transform job "cat": worker 0: worker failed: boom',
    },
    {
      why: 'a task ECS had no capacity for',
      fatal: {},
      failure: { Error: 'States.TaskFailed', Cause: '{"Failures":[{"Reason":"RESOURCE:MEMORY"}]}' },
      reason: /^CapacityError: Transform job "cat": States\.TaskFailed: .*RESOURCE:MEMORY/,
    },
    {
      why: 'an input that cannot be planned',
      fatal: {},
      failure: { Error: 'PlanError', Cause: 'no objects under s3://b/in/' },
      reason: /^ClientError: Transform job "cat": PlanError: no objects under s3:\/\/b\/in\//,
    },
  ] as const)(
    "prefixes the FailureReason with SageMaker's category: $why",
    async ({ fatal, failure, reason }) => {
      await writeFile(join(dir.path, 'in', 'a.csv'), '1\n');
      const ref = await validateStage({ request: request('cat') }, { ...deployed(), local: true }, storage);
      await planStage(ref, storage);
      const result: PartitionResult = {
        partition: 0,
        startedAt: '2026-11-22T00:00:00.000Z',
        endedAt: '2026-11-22T00:00:01.000Z',
        effective: { MaxConcurrentTransforms: 1, BatchStrategy: 'MultiRecord', MaxPayloadInMB: 1 },
        items: [],
        counters: emptyCounters(),
        ...fatal,
      };
      await writeJson(storage, resultUri(ref.workUri, 0), result);
      const d = await finalizeStage(ref, storage, failure ? { failure } : {});
      expect(d.TransformJobStatus).toBe('Failed');
      if (typeof reason === 'string') expect(d.FailureReason?.startsWith(reason), d.FailureReason).toBe(true);
      else expect(d.FailureReason).toMatch(reason);
    },
  );

  it("notes the request's accepted-and-ignored fields in the description", async () => {
    await writeFile(join(dir.path, 'in', 'a.csv'), '1\n');
    const req = request('ignored', { ExperimentConfig: { ExperimentName: 'e' } });
    const ref = await validateStage({ request: req }, { ...deployed(), local: true }, storage);
    await planStage(ref, storage);
    const d = await finalizeStage(ref, storage, { stopped: true });
    expect(d.IgnoredFields).toEqual([
      { path: 'ExperimentConfig', message: expect.stringMatching(/^accepted and ignored: /) },
    ]);
    const plain = await validateStage({ request: request('plain') }, { ...deployed(), local: true }, storage);
    expect(await finalizeStage(plain, storage, { stopped: true })).not.toHaveProperty('IgnoredFields');
  });

  it('reads a torn progress document (its writer killed mid-write) as no progress, not as the failure', async () => {
    await writeFile(join(dir.path, 'in', 'a.csv'), '1\n');
    const ref = await validateStage({ request: request('torn') }, { ...deployed(), local: true }, storage);
    await planStage(ref, storage);
    await storage.put(progressUri(ref.workUri, 0), '{"partition": 0, "object');
    const reports = await readReports(storage, ref.workUri);
    expect(reports.plan?.objects).toHaveLength(1);
    expect(reports.progress.size).toBe(0);
    const d = await finalizeStage(ref, storage);
    expect(d.FailureReason).not.toMatch(/not valid JSON/);
    expect(d.FailureReason).toMatch(/a\.csv/);
  });

  it.each([
    [
      {
        Error: 'States.TaskFailed',
        Cause: JSON.stringify({ errorType: 'PlanError', errorMessage: 'no input' }),
      },
      'no input',
    ],
    [
      {
        Error: 'States.TaskFailed',
        Cause: JSON.stringify({
          StoppedReason: 'Essential container in task exited',
          Containers: [
            { Name: 'model', ExitCode: 137 },
            { Name: 'sidecar', ExitCode: 0 },
          ],
        }),
      },
      'worker task stopped: Essential container in task exited; model exited 137',
    ],
    [{ Error: 'States.Timeout', Cause: 'not json' }, 'States.Timeout: not json'],
    [
      {
        Error: 'States.ExceedToleratedFailureThreshold',
        Cause: 'The specified tolerated failure threshold was exceeded',
      },
      "a partition's task failed after its retries (The specified tolerated failure threshold was exceeded)",
    ],
  ])('turns a state failure into words: %j', (failure, words) => {
    expect(describeStateFailure(failure)).toBe(words);
  });
});

describe('the cleanup stage', () => {
  it('removes shard scratch, keeps the summary inputs, and is safe to run twice', async () => {
    const work = `${dir.uri}work/j/`;
    await storage.put(`${work}shards/a.csv/00000.out`, 'x');
    await storage.put(`${work}shards/a.csv/00001.out`, 'y');
    await storage.put(`${work}job.json`, '{}');
    const target = { jobName: 'j', workUri: work, outputUri: `${dir.uri}out/` };
    expect(await cleanupStage(target, storage)).toEqual({
      abortedUploads: 0,
      deletedScratchObjects: 2,
      stoppedTasks: 0,
    });
    expect(await cleanupStage(target, storage)).toEqual({
      abortedUploads: 0,
      deletedScratchObjects: 0,
      stoppedTasks: 0,
    });
    expect(await storage.head(`${work}job.json`)).toBeDefined();
  });

  it("aborts the job's unfinished uploads and stops its tasks through TaskControl", async () => {
    const work = `${dir.uri}work/j/`;
    const writer = storage.createWriter(`${work}shards/a.csv/00000.out`);
    await writer.write(Buffer.from('partial'));
    const stopped: string[] = [];
    const report = await cleanupStage({ jobName: 'j', workUri: work, outputUri: `${dir.uri}out/` }, storage, {
      stopJobTasks: async (name) => {
        stopped.push(name);
        return 2;
      },
    });
    expect(report).toEqual({ abortedUploads: 1, deletedScratchObjects: 0, stoppedTasks: 2 });
    expect(stopped).toEqual(['j']);
    let left = 0;
    for await (const _ of storage.listIncompleteUploads(work)) left++;
    expect(left).toBe(0);
  });
});
