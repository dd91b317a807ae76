import { FAILURE_REASON_MAX } from '../../src/contract/description';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ListTasksCommand, StopTaskCommand } from '@aws-sdk/client-ecs';
import type { GetExecutionHistoryCommand, HistoryEvent } from '@aws-sdk/client-sfn';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cleanupEndedExecution, handler as cleanupHandler } from '../../lambdas/cleanup/handler';
import { describeFailure } from '../../lambdas/finalize/handler';
import type { DeploymentConfig } from '../../src/contract/deployment';
import { DeploymentConfigError, launchSpecFor, readDeploymentConfig } from '../../lambdas/shared/deployment';
import { EcsTaskControl } from '../../lambdas/shared/ecs-task-control';
import { jobOfExecution } from '../../src/client/execution-history';
import { validateEvent } from '../../lambdas/validate/handler';
import type { JobRef } from '../../src/contract/state';
import type { TaskControl } from '../../src/lifecycle/cleanup';
import { FileStorage } from '../../src/storage/file';
import { makeTempDir, type TempDir } from '../support/tmp';

const request = { TransformJobName: 'job-1', ModelName: 'iris' };

const network = (publicIp: boolean) => ({
  Subnets: ['subnet-1', 'subnet-2'],
  SecurityGroups: ['sg-1'],
  AssignPublicIp: publicIp ? ('ENABLED' as const) : ('DISABLED' as const),
});
const config: DeploymentConfig = {
  context: {
    models: { iris: { environment: { THREADS: '1', MODEL_SETTING: 'x' } } },
    enabledInstanceTypes: ['ml.g5.xlarge'],
    maxInstanceCount: 100,
    workRoot: 's3://work-bucket/jobs/',
  },
  launch: {
    fargateCapacityProvider: 'FARGATE',
    ec2CapacityProviders: { 'g5.xlarge': 'cp-g5' },
    taskDefinitionFamilyPrefix: 'Stack-Models-1A2B3C4D',
    network: { fargate: network(true), ec2: network(false) },
  },
};

function jobRef(overrides: Partial<JobRef> = {}): JobRef {
  return {
    jobName: 'job-1',
    jobUri: 's3://work-bucket/jobs/job-1/job.json',
    workUri: 's3://work-bucket/jobs/job-1/',
    outputUri: 's3://data-bucket/output/',
    modelName: 'iris',
    instanceType: 'ml.m5.xlarge',
    instanceCount: 2,
    capacity: { kind: 'fargate', cpu: 4096, memoryMiB: 16384 },
    modelEnvironment: [
      { Name: 'THREADS', Value: '4' },
      { Name: 'MODEL_SETTING', Value: 'x' },
      { Name: 'SAGEMAKER_BATCH', Value: 'true' },
    ],
    tags: [],
    creationTime: '2030-01-01T00:00:00.000Z',
    ...overrides,
  };
}

describe('validate handler: the execution input', () => {
  it.each([
    ['a bare request (console, CLI)', request, { request, executionName: 'job-1' }],
    [
      "a schedule's envelope",
      { request, scheduledTime: '2030-01-31T02:00:00Z', scheduleExecutionId: 'abc' },
      { request, executionName: 'job-1', scheduledTime: '2030-01-31T02:00:00Z' },
    ],
    ['an envelope without a time', { request }, { request, executionName: 'job-1' }],
    [
      'a request that happens to have a field named request',
      { ...request, request: 'x' },
      { request: { ...request, request: 'x' }, executionName: 'job-1' },
    ],
  ])('accepts %s', (_label, input, expected) => {
    expect(validateEvent({ input, executionName: 'job-1' })).toEqual(expected);
  });
});

describe('launchSpecFor: where a validated job runs', () => {
  it("runs a Fargate-sized job by its model's Fargate family (no revision), with the FARGATE capacity provider, its size as overrides and a public IP", () => {
    const spec = launchSpecFor(jobRef(), config);
    expect(spec).toMatchObject({
      taskDefinition: 'Stack-Models-1A2B3C4D_iris_fargate',
      capacityProviderStrategy: [{ CapacityProvider: 'FARGATE', Weight: 1, Base: 0 }],
      networkConfiguration: { AwsvpcConfiguration: network(true) },
      cpu: '4096',
      memory: '16384',
    });
  });

  it("runs an EC2 job on its instance type's capacity provider and family (no revision), without a public IP", () => {
    const spec = launchSpecFor(
      jobRef({
        instanceType: 'ml.g5.xlarge',
        capacity: {
          kind: 'ec2',
          instanceType: 'g5.xlarge',
          cpu: 4096,
          memoryMiB: 14592,
          gpus: 1,
          neuronDevices: 0,
        },
      }),
      config,
    );
    expect(spec).toMatchObject({
      taskDefinition: 'Stack-Models-1A2B3C4D_iris_g5-xlarge',
      capacityProviderStrategy: [{ CapacityProvider: 'cp-g5', Weight: 1, Base: 0 }],
      networkConfiguration: { AwsvpcConfiguration: network(false) },
      cpu: '4096',
      memory: '14592',
    });
  });

  it('overrides only the model environment the task definition does not already carry with the same value', () => {
    expect(launchSpecFor(jobRef(), config).modelEnvironment).toEqual([
      { Name: 'THREADS', Value: '4' },
      { Name: 'SAGEMAKER_BATCH', Value: 'true' },
    ]);
  });

  it.each([
    [
      'a model the deployment does not have',
      jobRef({ modelName: 'resnet' }),
      /model "resnet" has no task definition/,
    ],
    [
      'an EC2 type without capacity',
      jobRef({
        capacity: {
          kind: 'ec2',
          instanceType: 'p3.2xlarge',
          cpu: 8192,
          memoryMiB: 56064,
          gpus: 1,
          neuronDevices: 0,
        },
      }),
      /no capacity provider or task definition/,
    ],
    ['local capacity', jobRef({ capacity: { kind: 'local' } }), /local capacity/],
  ])('refuses %s', (_label, job, message) => {
    expect(() => launchSpecFor(job, config)).toThrow(message);
  });
});

describe('readDeploymentConfig', () => {
  it('reads the DEPLOYMENT document', () => {
    expect(readDeploymentConfig({ DEPLOYMENT: JSON.stringify(config) })).toEqual(config);
  });
  it.each([
    ['is missing', {}, /not set/],
    ['is not JSON', { DEPLOYMENT: '{nope' }, /not JSON/],
  ])('fails clearly when the variable %s', (_label, env, message) => {
    expect(() => readDeploymentConfig(env)).toThrow(DeploymentConfigError);
    expect(() => readDeploymentConfig(env)).toThrow(message);
  });
});

/** An ECS stand-in: pages of task ARNs for ListTasks, and a record of every command. */
function fakeEcs(pages: string[][]) {
  const sent: Array<ListTasksCommand | StopTaskCommand> = [];
  return {
    sent,
    async send(command: ListTasksCommand | StopTaskCommand) {
      sent.push(command);
      if (command instanceof ListTasksCommand) {
        const page = command.input.nextToken ? Number(command.input.nextToken) : 0;
        return {
          taskArns: pages[page] ?? [],
          ...(page + 1 < pages.length ? { nextToken: String(page + 1) } : {}),
        };
      }
      return {};
    },
  };
}

describe('EcsTaskControl', () => {
  it('stops every task started by the job, across ListTasks pages, and says why', async () => {
    const ecs = fakeEcs([['task/a', 'task/b'], ['task/c']]);
    const stopped = await new EcsTaskControl('arn:cluster/c', ecs).stopJobTasks(
      'job-1',
      'transform job cleanup',
    );
    expect(stopped).toBe(3);
    const lists = ecs.sent.filter((c) => c instanceof ListTasksCommand).map((c) => c.input);
    expect(lists[0]).toMatchObject({
      cluster: 'arn:cluster/c',
      startedBy: 'job-1',
      desiredStatus: 'RUNNING',
    });
    expect(lists).toHaveLength(2);
    const stops = ecs.sent.filter((c) => c instanceof StopTaskCommand).map((c) => c.input);
    expect(stops.map((s) => s.task)).toEqual(['task/a', 'task/b', 'task/c']);
    expect(stops[0]).toMatchObject({ cluster: 'arn:cluster/c', reason: 'transform job cleanup (job-1)' });
  });

  it('keeps the stop reason within the 255 characters ECS accepts', async () => {
    const ecs = fakeEcs([['task/a']]);
    await new EcsTaskControl('c', ecs).stopJobTasks('job-1', 'x'.repeat(400));
    const stop = ecs.sent.find((c) => c instanceof StopTaskCommand) as StopTaskCommand;
    expect(stop.input.reason).toHaveLength(255);
  });

  it('stops nothing when the job has no tasks', async () => {
    const ecs = fakeEcs([[]]);
    expect(await new EcsTaskControl('c', ecs).stopJobTasks('job-1', 'r')).toBe(0);
    expect(ecs.sent.some((c) => c instanceof StopTaskCommand)).toBe(false);
  });
});

/** A Step Functions stand-in serving an execution history in pages. */
function fakeHistory(pages: HistoryEvent[][]) {
  return {
    async send(command: GetExecutionHistoryCommand) {
      const page = command.input.nextToken ? Number(command.input.nextToken) : 0;
      return {
        events: pages[page] ?? [],
        ...(page + 1 < pages.length ? { nextToken: String(page + 1) } : {}),
      };
    },
  };
}
const exited = (name: string, output: unknown): HistoryEvent =>
  ({
    type: 'TaskStateExited',
    stateExitedEventDetails: { name, output: JSON.stringify(output) },
  }) as HistoryEvent;
const entered = (name: string): HistoryEvent =>
  ({ type: 'TaskStateEntered', stateEnteredEventDetails: { name, input: '{}' } }) as HistoryEvent;

describe('jobOfExecution', () => {
  it("finds the job in the Validate step's output, on whichever page it is", async () => {
    const job = jobRef();
    const sfn = fakeHistory([
      [entered('Validate')],
      [exited('Validate', { job, launch: {} }), entered('Plan')],
    ]);
    expect(await jobOfExecution(sfn, 'arn:execution')).toEqual(job);
  });

  it('finds no job when Validate failed or never ran', async () => {
    expect(
      await jobOfExecution(
        fakeHistory([[exited('Validate', { failure: { Error: 'JobValidationError' } })]]),
        'a',
      ),
    ).toBeUndefined();
    expect(await jobOfExecution(fakeHistory([[entered('Validate')]]), 'a')).toBeUndefined();
  });
});

describe('FinalizeFailure: the reason a failed job ends with', () => {
  let dir: TempDir;
  const storage = new FileStorage();
  beforeEach(async () => {
    dir = await makeTempDir('finalize');
  });
  afterEach(() => dir.remove());

  const lambdaError = (message: string) => ({
    Error: 'JobValidationError',
    Cause: JSON.stringify({ errorType: 'JobValidationError', errorMessage: message, trace: [] }),
  });

  it("names the rejected request's job and gives the Lambda error's message", async () => {
    const failure = lambdaError('Transform job "job-1" has 1 problem:\n  - ModelName: no model "x"');
    const result = await describeFailure({ ...request, failure }, failure, storage);
    expect(result).toEqual({
      TransformJobName: 'job-1',
      TransformJobStatus: 'Failed',
      FailureReason: 'ClientError: Transform job "job-1" has 1 problem:\n  - ModelName: no model "x"',
    });
  });

  it("takes the job name from a schedule's envelope and prefixes a reason that does not name it", async () => {
    const failure = lambdaError('ModelName: no model "x"');
    const result = await describeFailure({ request, failure }, failure, storage);
    expect(result.FailureReason).toBe('ClientError: Transform job "job-1": ModelName: no model "x"');
  });

  it('keeps the reason within 1024 characters', async () => {
    const failure = lambdaError('y'.repeat(5000));
    const result = await describeFailure({ failure }, failure, storage);
    expect(result.FailureReason).toHaveLength(FAILURE_REASON_MAX);
    expect(result.FailureReason?.endsWith('…')).toBe(true);
  });

  it("writes the failed job's summary when there is a job", async () => {
    const work = `${dir.uri}jobs/job-1/`;
    const failure = lambdaError('manifest s3://b/m.json cannot be read as JSON');
    const job = jobRef({ jobUri: `${work}job.json`, workUri: work, outputUri: `${dir.uri}out/` });
    const result = await describeFailure({ job, failure }, failure, storage);
    expect(result).toMatchObject({ TransformJobName: 'job-1', TransformJobStatus: 'Failed' });
    expect(result.FailureReason).toContain('manifest s3://b/m.json cannot be read as JSON');
    const summary = JSON.parse(await readFile(join(dir.path, 'jobs/job-1/summary.json'), 'utf8'));
    expect(summary.TransformJobStatus).toBe('Failed');
  });

  it('still returns a reason when the summary cannot be written', async () => {
    // A work location under a regular file: every write fails with ENOTDIR.
    await writeFile(join(dir.path, 'blocker'), '');
    const work = `${dir.uri}blocker/job-1/`;
    const failure = lambdaError('no input');
    const job = jobRef({ jobUri: `${work}job.json`, workUri: work });
    const result = await describeFailure({ job, failure }, failure, storage);
    expect(result).toEqual({
      TransformJobName: 'job-1',
      TransformJobStatus: 'Failed',
      FailureReason: 'ClientError: Transform job "job-1": no input',
    });
  });
});

describe('cleanup handler', () => {
  let dir: TempDir;
  const storage = new FileStorage();
  beforeEach(async () => {
    dir = await makeTempDir('cleanup');
  });
  afterEach(() => dir.remove());

  it('has nothing to clean when Validate rejected the request', async () => {
    process.env.CLUSTER_ARN = 'arn:aws:ecs:us-east-1:123456789012:cluster/c';
    expect(await cleanupHandler({ ...request, failure: { Error: 'JobValidationError' } })).toEqual({
      abortedUploads: 0,
      deletedScratchObjects: 0,
      stoppedTasks: 0,
    });
  });

  async function jobWithScratch(): Promise<JobRef> {
    const work = join(dir.path, 'jobs/job-1');
    await mkdir(join(work, 'shards/a.csv'), { recursive: true });
    await writeFile(join(work, 'shards/a.csv/00000.out'), 'partial');
    return jobRef({
      jobUri: `${dir.uri}jobs/job-1/job.json`,
      workUri: `${dir.uri}jobs/job-1/`,
      outputUri: `${dir.uri}out/`,
    });
  }
  const recordingTasks = () => {
    const calls: string[] = [];
    const tasks: TaskControl = {
      async stopJobTasks(jobName) {
        calls.push(jobName);
        return 2;
      },
    };
    return { calls, tasks };
  };

  it("stops a stopped execution's tasks, removes its scratch and records it as Stopped", async () => {
    const job = await jobWithScratch();
    const { calls, tasks } = recordingTasks();
    const sfn = fakeHistory([[exited('Validate', { job })]]);
    const report = await cleanupEndedExecution(
      { executionArn: 'arn:x', status: 'ABORTED' },
      storage,
      tasks,
      sfn,
    );
    expect(report).toEqual({ abortedUploads: 0, deletedScratchObjects: 1, stoppedTasks: 2 });
    expect(calls).toEqual(['job-1']);
    expect(existsSync(join(dir.path, 'jobs/job-1/shards/a.csv/00000.out'))).toBe(false);
    const summary = JSON.parse(await readFile(join(dir.path, 'jobs/job-1/summary.json'), 'utf8'));
    expect(summary.TransformJobStatus).toBe('Stopped');
  });

  /**
   * A stopped job that completed `a.csv` (output and errors file written after it was created), with
   * `old.csv.out` left by an earlier job at a planned key, and files the job never wrote beside them.
   */
  async function stoppedJobWithOutputs(keep: boolean): Promise<JobRef> {
    const creationTime = new Date(Date.now() - 60_000).toISOString();
    const job = jobRef({
      jobUri: `${dir.uri}jobs/job-1/job.json`,
      workUri: `${dir.uri}jobs/job-1/`,
      outputUri: `${dir.uri}out/`,
      creationTime,
    });
    await mkdir(join(dir.path, 'jobs/job-1'), { recursive: true });
    await mkdir(join(dir.path, 'out'), { recursive: true });
    await writeFile(
      join(dir.path, 'jobs/job-1/job.json'),
      JSON.stringify({ job: { Extensions: keep ? { KeepOutputsOnStop: true } : {} }, creationTime }),
    );
    const objects = ['a.csv', 'b.csv', 'old.csv'].map((relativeKey) => ({
      uri: `${dir.uri}in/${relativeKey}`,
      relativeKey,
      size: 4,
      shardCount: 1,
    }));
    await writeFile(
      join(dir.path, 'jobs/job-1/plan.json'),
      JSON.stringify({
        version: 1,
        jobName: 'job-1',
        createdAt: creationTime,
        workUri: job.workUri,
        outputUri: job.outputUri,
        objects,
        partitions: [],
        totalBytes: 12,
        skipped: [],
      }),
    );
    for (const name of ['a.csv.out', 'a.csv.errors.jsonl', 'other.txt', 'b.csv', 'old.csv.out'])
      await writeFile(join(dir.path, 'out', name), 'x');
    const longAgo = new Date('2020-01-01T00:00:00Z');
    await utimes(join(dir.path, 'out/old.csv.out'), longAgo, longAgo);
    return job;
  }

  it.each([
    { keep: false, left: ['b.csv', 'old.csv.out', 'other.txt'] },
    {
      keep: true,
      left: ['a.csv.errors.jsonl', 'a.csv.out', 'b.csv', 'old.csv.out', 'other.txt'],
    },
  ])(
    "a stopped execution's outputs that it wrote are removed unless KeepOutputsOnStop ($keep); nothing else is",
    async ({ keep, left }) => {
      const job = await stoppedJobWithOutputs(keep);
      const sfn = fakeHistory([[exited('Validate', { job })]]);
      await cleanupEndedExecution(
        { executionArn: 'arn:x', status: 'ABORTED' },
        storage,
        recordingTasks().tasks,
        sfn,
      );
      expect((await readdir(join(dir.path, 'out'))).sort()).toEqual(left);
      const summary = JSON.parse(await readFile(join(dir.path, 'jobs/job-1/summary.json'), 'utf8'));
      expect(summary.TransformJobStatus).toBe('Stopped');
    },
  );

  it('records a timed-out execution as Failed and leaves the summary of a failed one alone', async () => {
    const job = await jobWithScratch();
    const sfn = fakeHistory([[exited('Validate', { job })]]);
    await cleanupEndedExecution(
      { executionArn: 'arn:x', status: 'TIMED_OUT' },
      storage,
      recordingTasks().tasks,
      sfn,
    );
    const summaryPath = join(dir.path, 'jobs/job-1/summary.json');
    const timedOut = JSON.parse(await readFile(summaryPath, 'utf8'));
    expect(timedOut.TransformJobStatus).toBe('Failed');
    expect(timedOut.FailureReason).toMatch(/States.Timeout/);

    await writeFile(summaryPath, '{"TransformJobStatus":"Failed","FailureReason":"from the state machine"}');
    await cleanupEndedExecution(
      { executionArn: 'arn:x', status: 'FAILED' },
      storage,
      recordingTasks().tasks,
      sfn,
    );
    expect(JSON.parse(await readFile(summaryPath, 'utf8')).FailureReason).toBe('from the state machine');
  });

  it('does nothing for an execution that never validated a job', async () => {
    const { calls, tasks } = recordingTasks();
    const report = await cleanupEndedExecution(
      { executionArn: 'arn:x', status: 'ABORTED' },
      storage,
      tasks,
      fakeHistory([[]]),
    );
    expect(report).toEqual({ abortedUploads: 0, deletedScratchObjects: 0, stoppedTasks: 0 });
    expect(calls).toEqual([]);
  });
});
