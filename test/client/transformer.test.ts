import { readFileSync } from 'node:fs';
import { SFNClient } from '@aws-sdk/client-sfn';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BatchTransformError } from '../../src/client/aws';
import { Transformer, type TransformerOptions } from '../../src/client/transformer';
import { JobValidationError } from '../../src/job/problems';
import type { TransformJobRequest } from '../../src/job/schema';
import { emptyCounters } from '../../src/contract/results';
import { Storages } from '../../src/storage/index';
import { makeTempDir, type TempDir } from '../support/tmp';
import {
  executionArn,
  FakeAwsClient,
  type FakeHandler,
  historyWithValidatedJob,
  STATE_MACHINE_ARN,
  stackWithOutputs,
} from './fake-aws';

const request = JSON.parse(readFileSync('test/job/seed-request.json', 'utf8')) as TransformJobRequest;
const NAME = request.TransformJobName;
const ARN = executionArn(NAME);
const STARTED = new Date('2030-01-31T10:00:00.000Z');
const STOPPED = new Date('2030-01-31T10:20:00.000Z');

/** A Transformer on fakes, with no stack ARN in the environment unless a test puts one there. */
function transformerOn(
  sfnHandlers: Record<string, FakeHandler>,
  opts: Partial<TransformerOptions> & { cfn?: Record<string, FakeHandler> } = {},
) {
  const sfn = new FakeAwsClient('sfn', sfnHandlers);
  const cloudFormation = new FakeAwsClient(
    'cloudformation',
    opts.cfn ?? { DescribeStacks: stackWithOutputs() },
  );
  const { cfn: _cfn, ...rest } = opts;
  const transformer = new Transformer({ env: {}, ...rest, clients: { sfn, cloudFormation } });
  return { transformer, sfn, cloudFormation };
}

function execution(status: string, extra: Record<string, unknown> = {}) {
  return {
    executionArn: ARN,
    stateMachineArn: STATE_MACHINE_ARN,
    name: NAME,
    status,
    startDate: STARTED,
    input: JSON.stringify(request),
    ...(status === 'RUNNING' ? {} : { stopDate: STOPPED }),
    ...extra,
  };
}

/** What Finalize returns for a completed job (src/lifecycle/finalize.ts), as the execution output. */
function completedOutput() {
  return {
    TransformJobName: NAME,
    TransformJobStatus: 'Completed',
    ModelName: request.ModelName,
    MaxConcurrentTransforms: request.MaxConcurrentTransforms,
    MaxPayloadInMB: request.MaxPayloadInMB,
    BatchStrategy: request.BatchStrategy,
    Environment: request.Environment,
    TransformInput: request.TransformInput,
    TransformOutput: request.TransformOutput,
    TransformResources: request.TransformResources,
    CreationTime: '2030-01-31T10:00:01.000Z',
    TransformStartTime: '2030-01-31T10:01:00.000Z',
    TransformEndTime: '2030-01-31T10:19:00.000Z',
    Progress: {
      ...emptyCounters(),
      objectsTotal: 3,
      objectsCompleted: 3,
      records: 300,
      bytesIn: 3000,
      skippedObjects: 0,
    },
    FailedObjects: [],
    SummaryUri: `s3://work/jobs/${NAME}/summary.json`,
  };
}

let dir: TempDir;
beforeEach(async () => {
  dir = await makeTempDir('client');
});
afterEach(async () => {
  await dir.remove();
});

/** A work location with a plan of two partitions over three objects, as the plan stage writes it. */
async function writePlannedWork(workUri: string) {
  const work = workUri.slice('file://'.length);
  await mkdir(join(work, 'progress'), { recursive: true });
  await mkdir(join(work, 'results'), { recursive: true });
  const objects = ['a.csv', 'b.csv', 'c.csv'].map((k) => ({
    uri: `s3://in/${k}`,
    relativeKey: k,
    size: 1000,
    shardCount: 1,
  }));
  const plan = {
    version: 1,
    jobName: NAME,
    createdAt: '2030-01-31T10:00:30.000Z',
    workUri,
    outputUri: 's3://out/',
    objects,
    partitions: [
      {
        index: 0,
        items: [
          { object: 0, shard: 0 },
          { object: 1, shard: 0 },
        ],
        bytes: 2000,
      },
      { index: 1, items: [{ object: 2, shard: 0 }], bytes: 1000 },
    ],
    totalBytes: 3000,
    skipped: [{ uri: 's3://in/model.tar.gz', reason: 'not input' }],
  };
  await writeFile(join(work, 'plan.json'), JSON.stringify(plan));
  await writeFile(
    join(work, 'progress/00000.json'),
    JSON.stringify({
      partition: 0,
      updatedAt: '2030-01-31T10:05:00.000Z',
      counters: { ...emptyCounters(), records: 120, bytesIn: 1500, bytesOut: 300, invocations: 12 },
    }),
  );
  await writeFile(
    join(work, 'progress/00001.json'),
    JSON.stringify({
      partition: 1,
      updatedAt: '2030-01-31T10:05:00.000Z',
      counters: { ...emptyCounters(), records: 30, bytesIn: 400, bytesOut: 80, invocations: 3 },
    }),
  );
}

describe('finding the deployed state machine', () => {
  it('reads the StateMachineArn output of the default stack, BatchTransform, and runs jobs on that state machine', async () => {
    const { transformer, sfn, cloudFormation } = transformerOn({
      StartExecution: { executionArn: ARN, startDate: STARTED },
    });
    await transformer.transform(request);
    expect(cloudFormation.calls).toEqual([
      { command: 'DescribeStacks', input: { StackName: 'BatchTransform' } },
    ]);
    expect(sfn.inputsOf('StartExecution')[0].stateMachineArn).toBe(STATE_MACHINE_ARN);
    expect(await transformer.deployment()).toMatchObject({
      stateMachineArn: STATE_MACHINE_ARN,
      region: 'eu-west-1',
      source: 'stack',
      outputs: { WorkRoot: 's3://batchtransform-work-1/jobs/' },
    });
  });

  it('looks up another stack by name', async () => {
    const { transformer, cloudFormation } = transformerOn(
      {},
      { stackName: 'Nightly', cfn: { DescribeStacks: stackWithOutputs('Nightly') } },
    );
    expect((await transformer.deployment()).stackName).toBe('Nightly');
    expect(cloudFormation.inputsOf('DescribeStacks')).toEqual([{ StackName: 'Nightly' }]);
  });

  it('takes the ARN option first, then BATCH_TRANSFORM_STATE_MACHINE_ARN, and then reads no stack', async () => {
    const other = STATE_MACHINE_ARN.replace('abc123', 'env');
    const byOption = transformerOn(
      {},
      { stateMachineArn: STATE_MACHINE_ARN, env: { BATCH_TRANSFORM_STATE_MACHINE_ARN: other } },
    );
    expect(await byOption.transformer.deployment()).toEqual({
      stateMachineArn: STATE_MACHINE_ARN,
      region: 'eu-west-1',
      source: 'option',
    });
    const byEnv = transformerOn({}, { env: { BATCH_TRANSFORM_STATE_MACHINE_ARN: other } });
    expect(await byEnv.transformer.deployment()).toEqual({
      stateMachineArn: other,
      region: 'eu-west-1',
      source: 'environment',
    });
    expect([...byOption.cloudFormation.calls, ...byEnv.cloudFormation.calls]).toEqual([]);
  });

  it('reads a stack named on purpose even when BATCH_TRANSFORM_STATE_MACHINE_ARN is set', async () => {
    const other = STATE_MACHINE_ARN.replace('abc123', 'env');
    const { transformer, cloudFormation } = transformerOn(
      {},
      {
        stackName: 'Nightly',
        env: { BATCH_TRANSFORM_STATE_MACHINE_ARN: other },
        cfn: { DescribeStacks: stackWithOutputs('Nightly') },
      },
    );
    expect(await transformer.deployment()).toMatchObject({
      stateMachineArn: STATE_MACHINE_ARN,
      source: 'stack',
    });
    expect(cloudFormation.inputsOf('DescribeStacks')).toEqual([{ StackName: 'Nightly' }]);
  });

  it("sends Step Functions calls to the state machine's region, whatever the region option says", async () => {
    const arn = STATE_MACHINE_ARN.replace('eu-west-1', 'ap-southeast-2');
    // The SDK's own client, built by the transformer; asking its region makes no request.
    const transformer = new Transformer({ stateMachineArn: arn, region: 'us-east-1', env: {} });
    try {
      expect((await transformer.deployment()).region).toBe('ap-southeast-2');
      const sfn = (await transformer.sfnClient()) as SFNClient;
      expect(sfn).toBeInstanceOf(SFNClient);
      expect(await sfn.config.region()).toBe('ap-southeast-2');
    } finally {
      transformer.close();
    }
  });

  it('says clearly that there is no stack of that name and how else to name the state machine', async () => {
    const { transformer } = transformerOn(
      {},
      {
        stackName: 'Missing',
        region: 'eu-west-1',
        cfn: {
          DescribeStacks: {
            $error: { name: 'ValidationError', message: 'Stack with id Missing does not exist' },
          },
        },
      },
    );
    const error = await transformer.deployment().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BatchTransformError);
    expect(error).toMatchObject({ kind: 'NoDeployment' });
    expect((error as Error).message).toBe(
      'no stack named "Missing" in eu-west-1; deploy it (npx cdk deploy), name another stack with --stack-name, or give the state machine with --state-machine-arn or BATCH_TRANSFORM_STATE_MACHINE_ARN',
    );
  });

  it('says so when the stack has no StateMachineArn output', async () => {
    const { transformer } = transformerOn(
      {},
      {
        cfn: {
          DescribeStacks: {
            Stacks: [{ StackName: 'BatchTransform', StackStatus: 'CREATE_IN_PROGRESS', Outputs: [] }],
          },
        },
      },
    );
    await expect(transformer.deployment()).rejects.toThrow(
      /stack "BatchTransform" \(CREATE_IN_PROGRESS\) has no StateMachineArn output/,
    );
  });

  it('rejects a value that is not a state machine ARN, naming where it came from', async () => {
    const { transformer } = transformerOn(
      {},
      { env: { BATCH_TRANSFORM_STATE_MACHINE_ARN: 'BatchTransform' } },
    );
    await expect(transformer.deployment()).rejects.toThrow(
      '"BatchTransform" (from BATCH_TRANSFORM_STATE_MACHINE_ARN) is not a state machine ARN',
    );
  });

  it('turns a missing-credentials failure into a sentence that says how to provide them', async () => {
    const { transformer } = transformerOn(
      {},
      {
        cfn: {
          DescribeStacks: {
            $error: {
              name: 'CredentialsProviderError',
              message: 'Could not load credentials from any providers',
            },
          },
        },
      },
    );
    await expect(transformer.deployment()).rejects.toThrow(
      /^reading the outputs of stack "BatchTransform": no AWS credentials found; configure a profile/,
    );
  });
});

describe('Transformer.transform', () => {
  it('starts an execution named after the TransformJobName with the request, unchanged, as its input', async () => {
    const { transformer, sfn } = transformerOn({ StartExecution: { executionArn: ARN, startDate: STARTED } });
    const job = await transformer.transform(request);
    expect(sfn.calls).toEqual([
      {
        command: 'StartExecution',
        input: { stateMachineArn: STATE_MACHINE_ARN, name: NAME, input: JSON.stringify(request) },
      },
    ]);
    expect(JSON.parse(sfn.calls[0]!.input.input)).toEqual(request);
    expect(job.name).toBe(NAME);
    expect(job.executionArn).toBe(ARN);
  });

  it('checks the request here and calls nothing when it has problems, reporting every one', async () => {
    const { transformer, sfn, cloudFormation } = transformerOn({});
    const bad = {
      ...request,
      TransformJobName: 'bad_name',
      TransformResources: { InstanceType: 'ml.m5.xlarge', InstanceCount: 0 },
    };
    const error = await transformer.transform(bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(JobValidationError);
    expect((error as JobValidationError).problems.map((p) => p.path)).toEqual([
      'TransformJobName',
      'TransformResources.InstanceCount',
    ]);
    expect([...sfn.calls, ...cloudFormation.calls]).toEqual([]);
  });

  it('says "a job named X already exists" when Step Functions has an execution of that name', async () => {
    const { transformer } = transformerOn({
      StartExecution: {
        $error: { name: 'ExecutionAlreadyExists', message: `Execution Already Exists: '${ARN}'` },
      },
    });
    const error = await transformer.transform(request).catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: 'AlreadyExists' });
    expect((error as Error).message).toBe(
      `a job named "${NAME}" already exists; job names are unique, so give this one another TransformJobName`,
    );
  });
});

describe('Transformer.describe', () => {
  it.each([
    { status: 'RUNNING', says: 'nothing', output: undefined, expected: 'InProgress' },
    { status: 'PENDING_REDRIVE', says: 'nothing', output: undefined, expected: 'InProgress' },
    { status: 'SUCCEEDED', says: 'Completed', output: completedOutput(), expected: 'Completed' },
    {
      status: 'SUCCEEDED',
      says: 'Failed',
      output: { ...completedOutput(), TransformJobStatus: 'Failed', FailureReason: 'objects failed' },
      expected: 'Failed',
    },
    { status: 'FAILED', says: 'nothing', output: undefined, expected: 'Failed' },
    { status: 'TIMED_OUT', says: 'nothing', output: undefined, expected: 'Failed' },
    { status: 'ABORTED', says: 'nothing', output: undefined, expected: 'Stopped' },
  ])(
    'maps an execution $status whose output says $says to $expected',
    async ({ status, output, expected }) => {
      const { transformer } = transformerOn(
        {
          DescribeExecution: execution(status, output ? { output: JSON.stringify(output) } : {}),
          GetExecutionHistory: { events: [] },
        },
        { stateMachineArn: STATE_MACHINE_ARN },
      );
      expect((await transformer.describe(NAME)).TransformJobStatus).toBe(expected);
    },
  );

  it("describes a completed job with the execution's output: request fields, times and final counters", async () => {
    const { transformer, sfn } = transformerOn(
      { DescribeExecution: execution('SUCCEEDED', { output: JSON.stringify(completedOutput()) }) },
      { stateMachineArn: STATE_MACHINE_ARN },
    );
    const d = await transformer.describe(NAME);
    expect(d).toEqual({ ...completedOutput(), ExecutionArn: ARN });
    // The output is final: no history or work location is read.
    expect(sfn.calls).toEqual([{ command: 'DescribeExecution', input: { executionArn: ARN } }]);
  });

  it("gives a failed job the execution's cause as FailureReason and the request's fields", async () => {
    const cause = `Transform job "${NAME}": ModelName "nope" is not a model of this deployment`;
    const { transformer } = transformerOn(
      {
        DescribeExecution: execution('FAILED', { error: 'JobValidationError', cause }),
        GetExecutionHistory: { events: [{ id: 1, type: 'ExecutionStarted', timestamp: STARTED }] },
      },
      { stateMachineArn: STATE_MACHINE_ARN },
    );
    const d = await transformer.describe(NAME);
    expect(d).toMatchObject({
      TransformJobName: NAME,
      TransformJobStatus: 'Failed',
      FailureReason: `ClientError: ${cause}`,
      ModelName: request.ModelName,
      TransformInput: request.TransformInput,
      CreationTime: STARTED.toISOString(),
      TransformEndTime: STOPPED.toISOString(),
      ProgressUnavailable: 'the job never started',
    });
  });

  it("reads live progress from the sidecars' progress files while the job runs", async () => {
    const workUri = `${dir.uri}jobs/${NAME}/`;
    await writePlannedWork(workUri);
    const { transformer, sfn } = transformerOn(
      {
        DescribeExecution: execution('RUNNING'),
        GetExecutionHistory: historyWithValidatedJob(NAME, workUri),
      },
      { stateMachineArn: STATE_MACHINE_ARN },
    );
    const d = await transformer.describe(NAME);
    expect(d.TransformJobStatus).toBe('InProgress');
    expect(d.Progress).toEqual({
      ...emptyCounters(),
      objectsTotal: 3,
      records: 150,
      bytesIn: 1900,
      bytesOut: 380,
      invocations: 15,
      skippedObjects: 1,
      totalBytes: 3000,
    });
    expect(d.ProgressUnavailable).toBeUndefined();
    expect(sfn.inputsOf('GetExecutionHistory')[0]).toMatchObject({
      executionArn: ARN,
      includeExecutionData: true,
    });
  });

  it("returns the request's Tags, which the deployment put on the job's tasks", async () => {
    const tags = [{ Key: 'team', Value: 'search' }];
    const { transformer } = transformerOn(
      {
        DescribeExecution: execution('RUNNING', { input: JSON.stringify({ ...request, Tags: tags }) }),
        GetExecutionHistory: { events: [{ id: 1, type: 'ExecutionStarted', timestamp: STARTED }] },
      },
      { stateMachineArn: STATE_MACHINE_ARN },
    );
    expect((await transformer.describe(NAME)).Tags).toEqual(tags);
  });

  it('shows a stopped job Stopping until its cleanup has written the summary, then Stopped', async () => {
    const workUri = `${dir.uri}jobs/${NAME}/`;
    await writePlannedWork(workUri);
    const { transformer } = transformerOn(
      {
        DescribeExecution: execution('ABORTED', { stopDate: new Date() }),
        GetExecutionHistory: historyWithValidatedJob(NAME, workUri),
      },
      { stateMachineArn: STATE_MACHINE_ARN },
    );
    const stopping = await transformer.describe(NAME);
    expect(stopping.TransformJobStatus).toBe('Stopping');
    expect(stopping.Progress).toMatchObject({ records: 150 });
    await writeFile(
      join(workUri.slice(7), 'summary.json'),
      JSON.stringify({ ...completedOutput(), TransformJobStatus: 'Stopped' }),
    );
    expect((await transformer.describe(NAME)).TransformJobStatus).toBe('Stopped');
  });

  it('shows a stopped job Stopped once it stopped long ago, even if its cleanup never recorded it', async () => {
    const workUri = `${dir.uri}jobs/${NAME}/`;
    await writePlannedWork(workUri);
    const { transformer } = transformerOn(
      {
        DescribeExecution: execution('ABORTED', { stopDate: new Date(Date.now() - 3_600_000) }),
        GetExecutionHistory: historyWithValidatedJob(NAME, workUri),
      },
      { stateMachineArn: STATE_MACHINE_ARN },
    );
    expect((await transformer.describe(NAME)).TransformJobStatus).toBe('Stopped');
  });

  it("reads a failed job's counters and failed objects from the summary in its work location", async () => {
    const workUri = `${dir.uri}jobs/${NAME}/`;
    await mkdir(workUri.slice(7), { recursive: true });
    const summary = {
      ...completedOutput(),
      TransformJobStatus: 'Failed',
      FailureReason: `ClientError: Transform job "${NAME}": 1 of 3 input object(s) failed: s3://in/b.csv: model answered 500`,
      Progress: {
        ...emptyCounters(),
        objectsTotal: 3,
        objectsCompleted: 2,
        objectsFailed: 1,
        skippedObjects: 0,
      },
      FailedObjects: [{ uri: 's3://in/b.csv', reason: 'model answered 500', offset: 1024 }],
      SummaryUri: `${workUri}summary.json`,
    };
    await writeFile(join(workUri.slice(7), 'summary.json'), JSON.stringify(summary));
    const { transformer } = transformerOn(
      {
        DescribeExecution: execution('FAILED', { error: 'TransformJobFailed', cause: summary.FailureReason }),
        GetExecutionHistory: historyWithValidatedJob(NAME, workUri),
      },
      { stateMachineArn: STATE_MACHINE_ARN },
    );
    const d = await transformer.describe(NAME);
    expect(d).toMatchObject({
      TransformJobStatus: 'Failed',
      FailureReason: summary.FailureReason,
      Progress: summary.Progress,
      FailedObjects: summary.FailedObjects,
      TransformStartTime: summary.TransformStartTime,
    });
  });

  it.each([
    [
      'has not been validated yet',
      { events: [{ id: 1, type: 'ExecutionStarted', timestamp: STARTED }] },
      false,
    ],
    ['has not been planned yet', 'validated', false],
    ['cannot be read', 'validated', true],
  ])('says why there is no progress when the job %s', async (why, history, unreadable) => {
    const workUri = `${dir.uri}jobs/${NAME}/`;
    const { transformer } = transformerOn(
      {
        DescribeExecution: execution('RUNNING'),
        GetExecutionHistory:
          history === 'validated' ? historyWithValidatedJob(NAME, workUri) : (history as FakeHandler),
      },
      // A router that refuses file:// locations stands for a work location this user cannot read.
      {
        stateMachineArn: STATE_MACHINE_ARN,
        ...(unreadable ? { storage: new Storages({ file: false }) } : {}),
      },
    );
    const d = await transformer.describe(NAME);
    expect(d.TransformJobStatus).toBe('InProgress');
    expect(d.Progress).toBeUndefined();
    expect(d.ProgressUnavailable).toMatch(
      unreadable
        ? new RegExp(
            `^cannot read the job's progress under ${workUri}: file:// locations are not available here`,
          )
        : new RegExp(`^the job ${why}$`),
    );
  });

  it("names a scheduled run by the job its Validate step created, not by the schedule's template", async () => {
    const executionName = '3f0c8a52-1d2e-4b7a-9c55-0a1b2c3d4e5f';
    const jobName = 'nightly-20300131020000';
    const { transformer } = transformerOn(
      {
        DescribeExecution: execution('RUNNING', {
          name: executionName,
          input: JSON.stringify({
            request: { ...request, TransformJobName: 'nightly' },
            scheduledTime: '2030-01-31T02:00:00Z',
          }),
        }),
        GetExecutionHistory: historyWithValidatedJob(jobName, `${dir.uri}jobs/${jobName}/`),
      },
      { stateMachineArn: STATE_MACHINE_ARN },
    );
    const d = await transformer.describe(executionName);
    expect(d).toMatchObject({
      TransformJobName: jobName,
      ModelName: request.ModelName,
      ProgressUnavailable: 'the job has not been planned yet',
    });
  });

  it('says clearly that there is no job of that name', async () => {
    const { transformer } = transformerOn(
      {
        DescribeExecution: {
          $error: { name: 'ExecutionDoesNotExist', message: `Execution Does Not Exist: '${ARN}'` },
        },
      },
      { stateMachineArn: STATE_MACHINE_ARN },
    );
    const error = await transformer.describe(NAME).catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: 'NotFound' });
    expect((error as Error).message).toBe(
      `no transform job named "${NAME}" (state machine BatchTransform-Lifecycle-abc123)`,
    );
  });
});

describe('TransformJob.wait', () => {
  it('polls DescribeExecution until the job ends and resolves with the final description', async () => {
    const { transformer, sfn } = transformerOn(
      {
        DescribeExecution: [
          execution('RUNNING'),
          execution('RUNNING'),
          execution('SUCCEEDED', { output: JSON.stringify(completedOutput()) }),
        ],
        GetExecutionHistory: { events: [] },
      },
      { stateMachineArn: STATE_MACHINE_ARN },
    );
    const seen: string[] = [];
    const job = await transformer.attach(NAME);
    const final = await job.wait({ pollIntervalMs: 1, onUpdate: (d) => seen.push(d.TransformJobStatus) });
    expect(seen).toEqual(['InProgress', 'InProgress', 'Completed']);
    expect(final.TransformJobStatus).toBe('Completed');
    expect(sfn.inputsOf('DescribeExecution')).toHaveLength(3);
  });

  it('resolves with a Failed description rather than throwing', async () => {
    const { transformer } = transformerOn(
      {
        DescribeExecution: execution('FAILED', { error: 'States.TaskFailed', cause: 'worker task stopped' }),
        GetExecutionHistory: { events: [] },
      },
      { stateMachineArn: STATE_MACHINE_ARN },
    );
    const final = await (await transformer.attach(NAME)).wait({ pollIntervalMs: 1 });
    expect(final).toMatchObject({
      TransformJobStatus: 'Failed',
      FailureReason: 'InternalServerError: worker task stopped',
    });
  });

  it('stops waiting, not the job, when its signal is aborted', async () => {
    const { transformer, sfn } = transformerOn(
      { DescribeExecution: execution('RUNNING'), GetExecutionHistory: { events: [] } },
      { stateMachineArn: STATE_MACHINE_ARN },
    );
    const abort = new AbortController();
    const job = await transformer.attach(NAME);
    const waiting = job.wait({
      pollIntervalMs: 60_000,
      signal: abort.signal,
      onUpdate: () => abort.abort(new Error('enough')),
    });
    await expect(waiting).rejects.toThrow('enough');
    expect(sfn.calls.map((c) => c.command)).not.toContain('StopExecution');
  });
});

describe('Transformer.stop', () => {
  it('stops a running job with StopExecution and describes it as Stopped', async () => {
    const { transformer, sfn } = transformerOn(
      {
        DescribeExecution: [execution('RUNNING'), execution('ABORTED')],
        StopExecution: { stopDate: STOPPED },
        GetExecutionHistory: { events: [] },
      },
      { stateMachineArn: STATE_MACHINE_ARN },
    );
    const d = await transformer.stop(NAME);
    expect(sfn.inputsOf('StopExecution')).toEqual([{ executionArn: ARN }]);
    expect(d.TransformJobStatus).toBe('Stopped');
  });

  it('refuses to stop a job that already ended, and sends no StopExecution', async () => {
    const { transformer, sfn } = transformerOn(
      { DescribeExecution: execution('SUCCEEDED', { output: JSON.stringify(completedOutput()) }) },
      { stateMachineArn: STATE_MACHINE_ARN },
    );
    const error = await transformer.stop(NAME).catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: 'NotInProgress' });
    expect((error as Error).message).toBe(
      `transform job "${NAME}" is Completed, not InProgress: only a job in progress can be stopped`,
    );
    expect(sfn.inputsOf('StopExecution')).toEqual([]);
  });
});
