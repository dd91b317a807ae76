import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handler as finalizeHandler } from '../../lambdas/finalize/handler';
import { type Asl, stateMachineDefinition } from './definition';
import { asLambda, type LocalHandler, runLocally, STATE_NAMES as S, visited } from './local-execution';
import { HISTORY_EVENT_LIMIT, runPartitionsAtScale } from './partitions-at-scale';
import { type Cfn, exampleProps, type Synthesized, synthesize } from './synth';

/**
 * The synthesized definition executed by aws-local-stepfunctions with stand-in steps: proves the
 * paths the ASL encodes (parameters, retries, catches, the end states), independent of what each
 * stage does. (Stage behaviour is tested with the stage modules.)
 */

let synth: Synthesized;
let definition: Asl;
beforeAll(() => {
  synth = synthesize(exampleProps({ schedules: {} }));
  definition = stateMachineDefinition(synth.json);
});
afterAll(() => synth?.dispose());

const request = { TransformJobName: 'job-1', ModelName: 'iris' };

class NamedError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/**
 * S3 as the Distributed Map's ItemReader sees it: the Plan stand-in puts its partition items here
 * and the reader stand-in (local-execution.ts, withItemReaderStandIn) reads them back.
 */
const workBucketObjects = new Map<string, unknown[]>();
const readItems = ({ Bucket, Key }: { Bucket: string; Key: string }) => {
  expect(Bucket).toMatch(/^batchtransformstoragework/); // the work bucket, fixed at synthesis
  const items = workBucketObjects.get(Key);
  if (!items) throw new NamedError('S3.NoSuchKey', `no object ${Key}`);
  return items;
};

/** Stand-ins for every Task state; each records the input it got. Override any of them per test. */
function steps(overrides: Partial<Record<string, LocalHandler>> = {}) {
  const calls: Record<string, unknown[]> = {};
  const record =
    (name: string, fn: LocalHandler): LocalHandler =>
    async (input) => {
      calls[name] = [...(calls[name] ?? []), structuredClone(input)];
      return fn(input);
    };
  const job = {
    jobName: 'job-1',
    jobUri: 's3://w/jobs/job-1/job.json',
    workUri: 's3://w/jobs/job-1/',
    outputUri: 's3://d/out/',
    instanceCount: 2,
    tags: [{ Key: 'team', Value: 'search' }],
  };
  const launch = {
    taskDefinition: 'arn:td/iris-fargate:1',
    capacityProviderStrategy: [{ CapacityProvider: 'FARGATE', Weight: 1, Base: 0 }],
    networkConfiguration: {
      AwsvpcConfiguration: { Subnets: ['s-1'], SecurityGroups: ['sg-1'], AssignPublicIp: 'ENABLED' },
    },
    cpu: '2048',
    memory: '8192',
    modelEnvironment: [{ Name: 'SAGEMAKER_BATCH', Value: 'true' }],
  };
  const defaults: Record<string, LocalHandler> = {
    [S.validate]: () => ({ job, launch }),
    [S.plan]: () => {
      const partitions = [{ index: 0 }, { index: 1 }, { index: 2 }];
      workBucketObjects.set('jobs/job-1/partition-items.json', partitions);
      return {
        planUri: 's3://w/jobs/job-1/plan.json',
        partitions,
        partitionItemsKey: 'jobs/job-1/partition-items.json',
        objectCount: 3,
      };
    },
    [S.runPartition]: (input) => ({
      TaskArn: `arn:task/${input.Overrides.ContainerOverrides[0].Environment[2].Value}`,
      StopCode: 'EssentialContainerExited',
    }),
    [S.assemble]: () => ({ assembledObjects: 0 }),
    [S.finalize]: () => ({ TransformJobName: 'job-1', TransformJobStatus: 'Completed' }),
    [S.cleanup]: () => ({ abortedUploads: 0, deletedScratchObjects: 3, stoppedTasks: 0 }),
    [S.finalizeFailure]: (state) => ({
      TransformJobStatus: 'Failed',
      FailureReason: `reason: ${state.failure.Error}`,
    }),
    [S.cleanupAfterFailure]: () => ({ abortedUploads: 1, deletedScratchObjects: 0, stoppedTasks: 2 }),
  };
  const handlers = Object.fromEntries(
    Object.entries({ ...defaults, ...overrides }).map(([name, fn]) => [name, asLambda(record(name, fn!))]),
  );
  return { handlers, calls };
}

describe('the lifecycle, executed locally', () => {
  it('runs validate, plan, one task per partition, assemble, finalize and cleanup, and returns the job description', async () => {
    const { handlers, calls } = steps();
    const outcome = await runLocally(definition, request, handlers, { executionName: 'job-1', readItems });
    expect(outcome).toMatchObject({
      status: 'SUCCEEDED',
      output: { TransformJobName: 'job-1', TransformJobStatus: 'Completed' },
    });
    expect(calls[S.validate]).toEqual([{ input: request, executionName: 'job-1' }]);
    const order = visited(outcome.events).filter((n) => n !== S.partition && n !== S.runPartition);
    expect(order).toEqual([
      S.validate,
      S.plan,
      S.runPartitions,
      S.assemble,
      S.finalize,
      S.cleanup,
      S.isCompleted,
      S.succeeded,
    ]);
    // One RunTask per partition, each told its partition and the job's references.
    const runs = calls[S.runPartition] as Array<Record<string, Cfn>>;
    expect(
      runs
        .map((r) => r.Overrides.ContainerOverrides[0].Environment)
        .sort((a, b) => a[2].Value.localeCompare(b[2].Value)),
    ).toEqual(
      ['0', '1', '2'].map((i) => [
        { Name: 'JOB_URI', Value: 's3://w/jobs/job-1/job.json' },
        { Name: 'PLAN_URI', Value: 's3://w/jobs/job-1/plan.json' },
        { Name: 'PARTITION_INDEX', Value: i },
      ]),
    );
    expect(runs[0]).toMatchObject({
      TaskDefinition: 'arn:td/iris-fargate:1',
      CapacityProviderStrategy: [{ CapacityProvider: 'FARGATE', Weight: 1, Base: 0 }],
      StartedBy: 'job-1',
      Tags: [{ Key: 'team', Value: 'search' }],
      PropagateTags: 'TASK_DEFINITION',
      Overrides: {
        Cpu: '2048',
        Memory: '8192',
        ContainerOverrides: [
          {},
          { Name: 'model', Environment: [{ Name: 'SAGEMAKER_BATCH', Value: 'true' }] },
        ],
      },
    });
    // The stages after the Map see the job and plan, not the task descriptions. (Not the items
    // either: the ItemReader stand-in's field is there only because aws-local-stepfunctions cannot
    // read them itself, see withItemReaderStandIn.)
    expect(
      Object.keys(calls[S.finalize]![0] as object)
        .filter((k) => !k.endsWith('·items'))
        .sort(),
    ).toEqual(['assembled', 'job', 'launch', 'plan']);
  });

  it('retries a partition whose task failed once, and completes the job', async () => {
    let failures = 0;
    const { handlers, calls } = steps({
      [S.runPartition]: (input) => {
        const index = input.Overrides.ContainerOverrides[0].Environment[2].Value;
        if (index === '1' && failures++ === 0)
          throw new NamedError('States.TaskFailed', '{"StoppedReason":"Essential container in task exited"}');
        return { TaskArn: `arn:task/${index}` };
      },
    });
    const outcome = await runLocally(definition, request, handlers, { executionName: 'job-1', readItems });
    expect(outcome.status).toBe('SUCCEEDED');
    expect(calls[S.runPartition]).toHaveLength(4);
    expect(calls[S.finalizeFailure]).toBeUndefined();
  });

  it('completes a partition whose task failed only because its model exited 143 after the sidecar finished', async () => {
    const { handlers, calls } = steps();
    // As Step Functions reports a .sync task with any non-zero container: the task as the cause.
    const stopped = (sidecar: number) =>
      JSON.stringify({
        StopCode: 'EssentialContainerExited',
        Containers: [
          { Name: 'sidecar', ExitCode: sidecar },
          { Name: 'model', ExitCode: 143 },
        ],
      });
    const runs: string[] = [];
    handlers[S.runPartition] = (input) => {
      const index = input.Overrides.ContainerOverrides[0].Environment[2].Value;
      runs.push(index);
      throw new NamedError('States.TaskFailed', stopped(index === '2' ? 1 : 0));
    };
    const outcome = await runLocally(definition, request, handlers, { executionName: 'job-1', readItems });

    // Partitions 0 and 1 ran once and are done; partition 2's sidecar failed: three attempts, then the job fails.
    expect(runs.sort()).toEqual(['0', '1', '2', '2', '2']);
    expect(outcome).toMatchObject({ status: 'FAILED', error: 'States.TaskFailed' });
    const state = calls[S.finalizeFailure]![0] as Record<string, Cfn>;
    expect(state.failure).toEqual({ Error: 'States.TaskFailed', Cause: stopped(1) });
  });

  it('retries a RunTask that found no capacity (AmazonECS.Unknown) and completes the job', async () => {
    const { handlers, calls } = steps();
    let refused = 0;
    const run = handlers[S.runPartition]!;
    handlers[S.runPartition] = (input) => {
      if (refused++ < 2)
        throw new NamedError(
          'AmazonECS.Unknown',
          'RunTask failures: [{"reason":"Capacity is unavailable at this time"}]',
        );
      return run(input);
    };
    const outcome = await runLocally(definition, request, handlers, { executionName: 'job-1', readItems });
    expect(outcome.status).toBe('SUCCEEDED');
    expect(calls[S.finalizeFailure]).toBeUndefined();
  });

  it('fails a partition whose sidecar never ran (fetch-model failed) with the task as the cause, retried', async () => {
    const { handlers, calls } = steps();
    const cause = JSON.stringify({
      StopCode: 'EssentialContainerExited',
      Containers: [{ Name: 'fetch-model', ExitCode: 1 }, { Name: 'model' }, { Name: 'sidecar' }],
    });
    let runs = 0;
    handlers[S.runPartition] = () => {
      runs++;
      throw new NamedError('States.TaskFailed', cause);
    };
    const outcome = await runLocally(definition, request, handlers, { executionName: 'job-1', readItems });

    expect(outcome).toMatchObject({ status: 'FAILED', error: 'States.TaskFailed' });
    expect(runs).toBeGreaterThanOrEqual(3);
    expect((calls[S.finalizeFailure]![0] as Record<string, Cfn>).failure).toEqual({
      Error: 'States.TaskFailed',
      Cause: cause,
    });
  });

  it('fails the job through FinalizeFailure and cleanup when a partition keeps failing, with the caught error', async () => {
    const { handlers, calls } = steps({
      [S.runPartition]: () => {
        throw new NamedError('States.TaskFailed', '{"StoppedReason":"OutOfMemoryError: Container killed"}');
      },
    });
    const outcome = await runLocally(definition, request, handlers, { executionName: 'job-1', readItems });
    expect(outcome).toMatchObject({
      status: 'FAILED',
      error: 'States.TaskFailed',
      cause: 'reason: States.TaskFailed',
    });
    // One first attempt and two retries per partition; the first partition to run out of attempts
    // fails the Map, which stops the others wherever they are.
    const attempts = new Map<string, number>();
    for (const run of calls[S.runPartition] as Array<Record<string, Cfn>>) {
      const index = run.Overrides.ContainerOverrides[0].Environment[2].Value;
      attempts.set(index, (attempts.get(index) ?? 0) + 1);
    }
    expect(Math.max(...attempts.values())).toBe(3);
    const state = calls[S.finalizeFailure]![0] as Record<string, Cfn>;
    expect(state.failure.Error).toBe('States.TaskFailed');
    expect(JSON.parse(state.failure.Cause).errorMessage).toContain('OutOfMemoryError');
    expect(state.job.jobName).toBe('job-1');
    expect(calls[S.cleanupAfterFailure]).toHaveLength(1);
    expect(calls[S.assemble]).toBeUndefined();
    // The states of a partition that the Map stopped may still report after the Map failed.
    const inPartition: string[] = [S.partition, S.runPartition, S.readPartitionTask, S.isPartitionTask];
    inPartition.push(S.readSidecarResult, S.isPartitionDone, S.partitionFailed);
    const outside = visited(outcome.events).filter((n) => !inPartition.includes(n));
    expect(outside.slice(-3)).toEqual([S.finalizeFailure, S.cleanupAfterFailure, S.jobFailed]);
  });

  it('ends a rejected request in JobFailed with the validation error and its message as the reason', async () => {
    const { handlers, calls } = steps({
      [S.validate]: () => {
        throw new NamedError(
          'JobValidationError',
          'Transform job "job-1" has 1 problem:\n  - ModelName: no model "resnet"',
        );
      },
      // The real finalize handler: with no job it writes nothing and makes the reason from the error.
      [S.finalizeFailure]: finalizeHandler,
    });
    const outcome = await runLocally(definition, request, handlers, { executionName: 'job-1', readItems });
    expect(outcome).toMatchObject({
      status: 'FAILED',
      error: 'JobValidationError',
      cause: 'ClientError: Transform job "job-1" has 1 problem:\n  - ModelName: no model "resnet"',
    });
    expect(calls[S.cleanupAfterFailure]).toHaveLength(1);
    expect(calls[S.plan]).toBeUndefined();
  });

  it('cleans up and ends TransformJobFailed when finalize reports failed objects', async () => {
    const reason =
      'Transform job "job-1": 1 of 3 input object(s) failed: s3://d/in/b.csv: model answered 500';
    const { handlers, calls } = steps({
      [S.finalize]: () => ({ TransformJobStatus: 'Failed', FailureReason: reason }),
    });
    const outcome = await runLocally(definition, request, handlers, { executionName: 'job-1', readItems });
    expect(outcome).toMatchObject({ status: 'FAILED', error: 'TransformJobFailed', cause: reason });
    expect(calls[S.cleanup]).toHaveLength(1);
    expect(calls[S.finalizeFailure]).toBeUndefined();
  });

  it('still fails with the original error when FinalizeFailure itself fails', async () => {
    const { handlers, calls } = steps({
      [S.plan]: () => {
        throw new NamedError(
          'PlanError',
          'Transform job "job-1" has no input: s3://d/in/ matched no objects',
        );
      },
      [S.finalizeFailure]: () => {
        throw new NamedError('Error', 'S3 is unreachable');
      },
    });
    const outcome = await runLocally(definition, request, handlers, { executionName: 'job-1', readItems });
    expect(outcome.status).toBe('FAILED');
    if (outcome.status !== 'FAILED') return;
    expect(outcome.error).toBe('PlanError');
    expect(JSON.parse(outcome.cause).errorMessage).toContain('matched no objects');
    expect(calls[S.cleanupAfterFailure]).toHaveLength(1);
    expect(visited(outcome.events).slice(-4)).toEqual([
      S.finalizeFailure,
      S.reasonFromCause,
      S.cleanupAfterFailure,
      S.jobFailed,
    ]);
  });

  it('completes a job whose cleanup failed (what is left is scratch that expires)', async () => {
    const { handlers } = steps({
      [S.cleanup]: () => {
        throw new NamedError('Error', 'throttled');
      },
    });
    const outcome = await runLocally(definition, request, handlers, { executionName: 'job-1', readItems });
    expect(outcome).toMatchObject({ status: 'SUCCEEDED', output: { TransformJobStatus: 'Completed' } });
  });
});

describe('partitions at scale (Distributed Map)', () => {
  it('is a Distributed Map whose items come from the plan in S3 and whose concurrency is InstanceCount', () => {
    const map = definition.States[S.runPartitions];
    expect(map.ItemProcessor.ProcessorConfig).toEqual({ Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' });
    expect(map.ItemReader).toMatchObject({
      Resource: 'arn:aws:states:::s3:getObject',
      ReaderConfig: { InputType: 'JSON' },
      Parameters: { 'Key.$': '$.plan.partitionItemsKey' },
    });
    expect(map.MaxConcurrencyPath).toBe('$.job.instanceCount');
  });

  it('runs 100 partitions at once when InstanceCount is 100 (no waves of 40)', async () => {
    const run = await runPartitionsAtScale(definition, { partitions: 100, holdUntilInFlight: 100 });
    expect(run.status).toBe('SUCCEEDED');
    expect(run.runTaskCalls).toBe(100);
    expect(run.maxConcurrentPartitions).toBe(100);
  });

  it('keeps every execution history of 100 partitions, each retried twice, far below 25,000 events', async () => {
    const run = await runPartitionsAtScale(definition, { partitions: 100, failuresPerPartition: 2 });
    expect(run.status).toBe('SUCCEEDED');
    expect(run.runTaskCalls).toBe(300);
    expect(run.history.children).toBe(100);
    // Child: started and ended (2); the partition's Parallel (4) and its 2 retries (2 each); 3 attempts
    // of the task (entered, scheduled, started, submitted, failed/succeeded, exited: 6 each); after each
    // of the 2 failures, the judgement: ReadPartitionTask (2), IsPartitionTask (2), PartitionFailed (1).
    expect(run.history.largestChild).toBe(2 + 4 + 2 * 2 + 3 * 6 + 2 * (2 + 2 + 1));
    // The parent grows by the Map run's few events, not by the partitions.
    expect(run.history.parent).toBeLessThan(60);
    expect(run.history.parentIfInline).toBeGreaterThan(100 * 16);
    expect(Math.max(run.history.parent, run.history.largestChild)).toBeLessThan(HISTORY_EVENT_LIMIT);
  });
});
