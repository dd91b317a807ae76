import type { TransformJobDescription } from '../../src/contract/description';
import type { CfnElement } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchTransformProps } from '../../lib/batch-transform';
import { SIDECAR_ENTRY } from '../../src/local/worker';
import { shardOutputUri, summaryUri } from '../../src/contract/layout';
import type { IncompleteUpload } from '../../src/storage/storage';
import { TEST_MODEL_COMMAND } from '../fixtures/models/start';
import { type S3Harness, startS3Server } from '../support/s3-server';
import { type Asl, resolve, stateMachineDefinition } from './definition';
import { bucketName, bucketNames, lambdaStates } from './local-deployment';
import { LocalEcs, type LocalEcsOptions } from './local-ecs';
import {
  type EventLog,
  type LocalHandler,
  type LocalOutcome,
  runLocally,
  STATE_NAMES as S,
  visited,
} from './local-execution';
import { type Cfn, type Synthesized, synthesize } from './synth';

/**
 * The synthesized state machine executed end to end: its definition runs in aws-local-stepfunctions,
 * every Lambda state calls the real handler module of its function with the function's synthesized
 * environment, S3 is the loopback s3rver harness (the stack's buckets created in it), and the
 * RunTask state is served by a local ECS (local-ecs.ts) that starts the task definition's containers
 * as processes: the real sidecar entry point beside the test model. Only ECS's control plane is a
 * stand-in.
 */

const MODEL_IMAGE = 'registry.invalid/test-model:1';
const SIDECAR_IMAGE = 'registry.invalid/batch-transform-sidecar:1';
/** s3rver's built-in account: not a secret, the harness accepts only it. */
const S3RVER_KEYS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

/** One model whose deployment environment makes the test model upper-case what it gets. */
const props: BatchTransformProps = {
  models: {
    echo: {
      image: ecs.ContainerImage.fromRegistry(MODEL_IMAGE),
      environment: { TEST_MODEL_UPPERCASE: '1' },
    },
  },
  sidecarImage: ecs.ContainerImage.fromRegistry(SIDECAR_IMAGE),
};

let synth: Synthesized;
let definition: Asl;
let s3: S3Harness;
let localEcs: LocalEcs;
let lambdas: Record<string, LocalHandler>;
let data: string;
let work: string;
/** Set by a test to make some of its tasks misbehave. */
let misbehave: LocalEcsOptions['misbehave'];

beforeAll(async () => {
  // The S3 server starts while the stack synthesizes; the stack's buckets are created once known.
  const starting = startS3Server({ buckets: [] });
  synth = synthesize(props, { nag: false });
  definition = stateMachineDefinition(synth.json);
  data = bucketName(synth, synth.construct.storage.dataBucket!);
  work = bucketName(synth, synth.construct.storage.workBucket);
  s3 = await starting;
  for (const bucket of bucketNames(synth.json)) await s3.createBucket(bucket);
  localEcs = await LocalEcs.start({
    template: synth.json,
    images: {
      [MODEL_IMAGE]: { entryPoint: TEST_MODEL_COMMAND, portVariable: 'SAGEMAKER_BIND_TO_PORT' },
      [SIDECAR_IMAGE]: {
        entryPoint: [process.execPath, '--import', import.meta.resolve('tsx'), SIDECAR_ENTRY],
        command: ['run'],
      },
    },
    platformEnvironment: { AWS_ENDPOINT_URL_S3: s3.endpoint, ...S3RVER_KEYS },
    misbehave: (task) => misbehave?.(task),
  });
  lambdas = await lambdaStates(synth, definition, {
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_ENDPOINT_URL_ECS: localEcs.endpoint,
    ...S3RVER_KEYS,
  });
  // Synthesis is CPU-bound: on a busy two-core machine it alone can take half a minute.
}, 120_000);

afterAll(async () => {
  await localEcs?.stop();
  await s3?.stop();
  synth?.dispose();
});

/** Rows `<object>,<row>,<padding>`: every record names where it came from. */
function rows(object: number, count: number): string {
  let s = '';
  for (let i = 0; i < count; i++) s += `${object},${i},${'x'.repeat((i * 7) % 41)}\n`;
  return s;
}

const OBJECTS: Record<string, string> = {
  'a.csv': rows(1, 400),
  'b.csv': rows(2, 1500),
  'c.csv': rows(3, 50),
  'd.csv': rows(4, 800),
  'sub/e.csv': rows(5, 1200),
};

function request(name: string, extra: Record<string, unknown> = {}) {
  return {
    TransformJobName: name,
    ModelName: 'echo',
    BatchStrategy: 'MultiRecord',
    MaxPayloadInMB: 1,
    MaxConcurrentTransforms: 2,
    TransformInput: {
      DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `s3://${data}/input/${name}/` } },
      ContentType: 'text/csv',
      SplitType: 'Line',
    },
    TransformOutput: { S3OutputPath: `s3://${data}/output/${name}/`, AssembleWith: 'Line' },
    TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 2 },
    ...extra,
  };
}

/** Uploads the input and starts an execution named after the job, as the console would. */
async function execute(
  name: string,
  objects: Record<string, string>,
  extra: Record<string, unknown> = {},
): Promise<LocalOutcome> {
  await s3.seed(
    data,
    Object.entries(objects).map(([key, body]) => [`input/${name}/${key}`, body] as const),
  );
  const outcome = await runLocally(
    definition,
    request(name, extra),
    { ...lambdas, [S.runPartition]: localEcs.runTaskSync },
    {
      executionName: name,
      // The Distributed Map's ItemReader, which aws-local-stepfunctions does not run: the same
      // GetObject of the plan's partition items, from the loopback S3.
      readItems: async ({ Bucket, Key }) =>
        JSON.parse((await s3.storage.readAll(`s3://${Bucket}/${Key}`)).toString()),
    },
  );
  if (outcome.status === 'FAILED' && outcome.error !== 'TransformJobFailed') {
    // Say why, with the tasks' logs, rather than only that the status differs.
    console.error(outcome.error, outcome.cause, JSON.stringify(tasksOf(name), null, 1).slice(0, 20_000));
  }
  return outcome;
}

/** Every object under a prefix of a bucket, keyed by the rest of its key. */
async function objectsUnder(bucket: string, prefix: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const o of s3.storage.list(`s3://${bucket}/${prefix}`)) {
    out[o.uri.slice(`s3://${bucket}/${prefix}`.length)] = (await s3.storage.readAll(o.uri)).toString('utf8');
  }
  return out;
}

async function incompleteUploads(...prefixes: string[]): Promise<IncompleteUpload[]> {
  const found: IncompleteUpload[] = [];
  for (const prefix of prefixes)
    for await (const u of s3.storage.listIncompleteUploads(prefix)) found.push(u);
  return found;
}

function expectedOutputs(objects: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(objects).map(([key, body]) => [`${key}.out`, body.toUpperCase()]));
}

/** The output of a state the last time it exited (the state after its ResultPath). */
function exitedWith(events: readonly EventLog[], state: string): Cfn {
  const exits = events.filter(
    (e) => e.type === 'StateExited' && (e as { state: { name: string } }).state.name === state,
  ) as Array<{ state: { output: Cfn } }>;
  return exits.at(-1)?.state.output;
}

function tasksOf(jobName: string) {
  return localEcs.tasks.filter((t) => t.startedBy === jobName);
}

const partitionOf = (task: { environment: Readonly<Record<string, Readonly<Record<string, string>>>> }) =>
  task.environment.sidecar?.PARTITION_INDEX;

describe('the synthesized state machine, executed locally with the real handlers, sidecar and model', () => {
  it('runs a job over five objects on two tasks and writes each object’s transform, ending Completed', async () => {
    const name = 'e2e-completes';
    const outcome = await execute(name, OBJECTS);

    expect(outcome.status).toBe('SUCCEEDED');
    if (outcome.status !== 'SUCCEEDED') return;
    const description = outcome.output as TransformJobDescription;
    expect(description).toMatchObject({
      TransformJobName: name,
      TransformJobStatus: 'Completed',
      ModelName: 'echo',
      TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 2 },
      FailedObjects: [],
      SummaryUri: `s3://${work}/jobs/${name}/summary.json`,
    });
    expect(description.FailureReason).toBeUndefined();
    expect(description.Progress).toMatchObject({ objectsTotal: 5, objectsCompleted: 5, objectsFailed: 0 });
    expect(description.Progress.records).toBe(400 + 1500 + 50 + 800 + 1200);
    // The upper case comes from the model's environment declared in the deployment (its task definition).
    expect(await objectsUnder(data, `output/${name}/`)).toEqual(expectedOutputs(OBJECTS));

    // One task per partition, as the Validate step chose: the model's Fargate task definition.
    const tasks = tasksOf(name);
    expect(tasks.map(partitionOf).sort()).toEqual(['0', '1']);
    const fargate = synth.construct.modelTasks.taskDefinitions.get('echo')!.fargate.node
      .defaultChild as CfnElement;
    const fargateArn = resolve({ Ref: synth.stack.resolve(fargate.logicalId) }, synth.json);
    for (const task of tasks) {
      expect(task).toMatchObject({
        capacityProvider: 'FARGATE',
        stopCode: 'EssentialContainerExited',
        exitCodes: { sidecar: 0 },
      });
      expect(task.taskDefinitionArn).toBe(fargateArn);
      expect(task.environment.model).toMatchObject({ SAGEMAKER_BATCH: 'true', TEST_MODEL_UPPERCASE: '1' });
    }

    // The summary is kept, and cleanup asked ECS for the job's tasks on the cluster the tasks ran on.
    const summary = JSON.parse(
      (await s3.storage.readAll(summaryUri(`s3://${work}/jobs/${name}/`))).toString(),
    );
    expect(summary).toMatchObject({ TransformJobName: name, TransformJobStatus: 'Completed' });
    expect(exitedWith(outcome.events, S.cleanup).cleanup).toEqual({
      abortedUploads: 0,
      deletedScratchObjects: 0,
      stoppedTasks: 0,
    });
    const cluster =
      definition.States[S.runPartitions].ItemProcessor.States[S.partition].Branches[0].States[S.runPartition]
        .Parameters.Cluster;
    expect(localEcs.apiCalls).toContainEqual({
      action: 'ListTasks',
      input: expect.objectContaining({ cluster, startedBy: name, desiredStatus: 'RUNNING' }),
    });
  });

  it('retries a partition whose task failed (its model crashed) and completes with the same outputs', async () => {
    const name = 'e2e-retries';
    // The first task of partition 1 gets a model that exits after its first answer.
    misbehave = (task) =>
      task.startedBy === name && partitionOf(task) === '1' && task.attempt === 1
        ? { model: { TEST_MODEL_EXIT_AFTER_REQUESTS: '1' } }
        : undefined;
    let outcome: LocalOutcome;
    try {
      outcome = await execute(name, OBJECTS);
    } finally {
      misbehave = undefined;
    }

    expect(outcome.status).toBe('SUCCEEDED');
    expect(outcome).toMatchObject({ output: { TransformJobStatus: 'Completed', FailedObjects: [] } });
    expect(await objectsUnder(data, `output/${name}/`)).toEqual(expectedOutputs(OBJECTS));

    const tasks = tasksOf(name);
    expect(tasks.map((t) => [partitionOf(t), t.attempt]).sort()).toEqual([
      ['0', 1],
      ['1', 1],
      ['1', 2],
    ]);
    const failed = tasks.find((t) => t.attempt === 1 && partitionOf(t) === '1')!;
    // The sidecar saw its model go and exited 1, which ECS reports and Step Functions retried.
    expect(failed).toMatchObject({
      stopCode: 'EssentialContainerExited',
      exitCodes: { model: 1, sidecar: 1 },
    });
    expect(failed.logs.sidecar).toMatch(/the model stopped answering while transforming s3:\/\//);
    const retried = outcome.events.filter((e) => e.type === 'StateRetried');
    expect(retried.map((e) => (e as { state: { name: string } }).state.name)).toEqual([S.partition]);
    expect(visited(outcome.events)).not.toContain(S.finalizeFailure);
  });

  it('fails a job whose model answers 500 for records of a sharded object, names the object, and leaves no upload or scratch', async () => {
    const name = 'e2e-fails';
    // One object over 2 MiB is cut into one shard per task; a record in the second shard is poison.
    const lines = rows(9, 80_000).split('\n');
    lines[70_000] = `9,70000,poison`;
    const objects = { 'big.csv': lines.join('\n') };
    expect(objects['big.csv'].length).toBeGreaterThan(2 * 1024 * 1024);
    const outcome = await execute(name, objects, {
      Environment: { TEST_MODEL_FAIL_MARKER: 'poison' },
      ModelClientConfig: { InvocationsTimeoutInSeconds: 60, InvocationsMaxRetries: 1 },
      Extensions: { ShardMinSizeInMB: 1 },
    });

    const objectUri = `s3://${data}/input/${name}/big.csv`;
    expect(outcome.status).toBe('FAILED');
    if (outcome.status !== 'FAILED') return;
    expect(outcome.error).toBe('TransformJobFailed');
    expect(outcome.cause).toContain(`Transform job "${name}"`);
    expect(outcome.cause).toContain(objectUri);
    expect(outcome.cause).toMatch(/500/);

    // A failed object is not a failed task: both tasks ran to their end (SageMaker's semantics).
    const tasks = tasksOf(name);
    expect(tasks.map((t) => [partitionOf(t), t.exitCodes.sidecar]).sort()).toEqual([
      ['0', 0],
      ['1', 0],
    ]);
    const plan = JSON.parse((await s3.storage.readAll(`s3://${work}/jobs/${name}/plan.json`)).toString());
    expect(plan.objects).toMatchObject([{ uri: objectUri, shardCount: 2 }]);

    // Cleanup ran and removed the finished shard's scratch output; nothing is left half-written.
    expect(visited(outcome.events).slice(-4)).toEqual([
      S.finalize,
      S.cleanup,
      S.isCompleted,
      S.transformJobFailed,
    ]);
    const workUri = `s3://${work}/jobs/${name}/`;
    expect(exitedWith(outcome.events, S.cleanup).cleanup).toMatchObject({
      abortedUploads: 0,
      deletedScratchObjects: 1,
    });
    expect(await s3.storage.head(shardOutputUri(workUri, 'big.csv', 0))).toBeUndefined();
    expect(await objectsUnder(work, `jobs/${name}/shards/`)).toEqual({});
    expect(await objectsUnder(data, `output/${name}/`)).toEqual({});
    expect(await incompleteUploads(workUri, `s3://${data}/output/${name}/`)).toEqual([]);

    const summary = JSON.parse((await s3.storage.readAll(summaryUri(workUri))).toString());
    expect(summary).toMatchObject({
      TransformJobStatus: 'Failed',
      FailureReason: outcome.cause,
      FailedObjects: [{ uri: objectUri }],
    });
    expect(summary.FailedObjects[0].reason).toMatch(/500/);
  });
  it('resumes a failed job (Extensions.ResumeFrom): only the failed object runs again, and the outputs are a clean run’s', async () => {
    const first = 'e2e-resume-first';
    const objects = { ...OBJECTS, 'poisoned.csv': `${rows(6, 300)}6,300,poison\n` };
    // The first job's models answer 500 to the poisoned record (the deployment's model, broken).
    misbehave = (task) =>
      task.startedBy === first ? { model: { TEST_MODEL_FAIL_MARKER: 'poison' } } : undefined;
    const same = {
      ModelClientConfig: { InvocationsTimeoutInSeconds: 60, InvocationsMaxRetries: 0 },
      TransformInput: request(first).TransformInput,
      TransformOutput: request(first).TransformOutput,
    };
    try {
      const failed = await execute(first, objects, same);
      expect(failed).toMatchObject({ status: 'FAILED', error: 'TransformJobFailed' });
    } finally {
      misbehave = undefined;
    }
    expect(Object.keys(await objectsUnder(data, `output/${first}/`))).not.toContain('poisoned.csv.out');

    // The model fixed, the job resumed under a new name, with more instances.
    const name = 'e2e-resume-second';
    const outcome = await execute(
      name,
      {},
      {
        ...same,
        TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 3 },
        Extensions: { ResumeFrom: first },
      },
    );
    expect(outcome.status).toBe('SUCCEEDED');
    if (outcome.status !== 'SUCCEEDED') return;
    const description = outcome.output as TransformJobDescription;
    expect(description.Progress).toMatchObject({
      objectsTotal: 6,
      objectsCompleted: 1,
      objectsCompletedEarlier: 5,
      records: 301,
    });
    expect(await objectsUnder(data, `output/${first}/`)).toEqual(expectedOutputs(objects));
    expect(tasksOf(name)).toHaveLength(1);
  });
});
