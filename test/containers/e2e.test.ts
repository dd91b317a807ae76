import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchTransformProps } from '../../lib/batch-transform';
import { REPO_ROOT } from '../../lib/paths';
import type { TransformJobDescription } from '../../src/contract/description';
import type { IncompleteUpload } from '../../src/storage/storage';
import { type Asl, stateMachineDefinition } from '../cdk/definition';
import { bucketName, bucketNames, lambdaStates } from '../cdk/local-deployment';
import type { LocalEcs, LocalEcsOptions, TaskRecord } from '../cdk/local-ecs';
import { type LocalHandler, type LocalOutcome, runLocally, STATE_NAMES as S } from '../cdk/local-execution';
import { type Synthesized, synthesize } from '../cdk/synth';
import { type S3Harness, startS3Server } from '../support/s3-server';
import { type DockerEngine, docker, dockerAvailable, RUNNER_LABEL, startDockerEcs } from './ecs-runner';
import { IMAGES } from './images';

/**
 * The synthesized stack end to end with real containers: the state machine in aws-local-stepfunctions,
 * the real Lambda handlers, the loopback S3, and every partition's task run from its synthesized task
 * definition on Docker (ecs-runner.ts) with the images built from the repository's Dockerfiles
 * (setup.sh): the sidecar, the iris model, and the test model (which can exit 143 on SIGTERM, as gunicorn does).
 */

const ARTIFACTS_BUCKET = 'model-artifacts';
const IRIS_ARTIFACTS = `s3://${ARTIFACTS_BUCKET}/iris/model.tar.gz`;
/** s3rver's built-in account: not a secret, the harness accepts only it. */
const S3RVER_KEYS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

const props: BatchTransformProps = {
  models: {
    iris: { image: ecs.ContainerImage.fromRegistry(IMAGES.iris), modelDataUrl: IRIS_ARTIFACTS },
    echo: {
      image: ecs.ContainerImage.fromRegistry(IMAGES.testModel),
      environment: { TEST_MODEL_UPPERCASE: '1' },
    },
    // Its artifacts do not exist: fetch-model fails.
    'no-artifacts': {
      image: ecs.ContainerImage.fromRegistry(IMAGES.testModel),
      modelDataUrl: `s3://${ARTIFACTS_BUCKET}/missing/model.tar.gz`,
    },
  },
  sidecarImage: ecs.ContainerImage.fromRegistry(IMAGES.sidecar),
};

let synth: Synthesized;
let definition: Asl;
let s3: S3Harness;
let runner: LocalEcs;
let engine: DockerEngine;
let lambdas: Record<string, LocalHandler>;
let data: string;
let scratch: string;
let misbehave: LocalEcsOptions['misbehave'];

beforeAll(async () => {
  if (!(await dockerAvailable()))
    throw new Error('no Docker engine answers: run `bash test/containers/setup.sh` (as root) first');
  const starting = startS3Server({ buckets: [] });
  synth = synthesize(props, { nag: false });
  definition = stateMachineDefinition(synth.json);
  data = bucketName(synth, synth.construct.storage.dataBucket!);
  s3 = await starting;
  for (const bucket of [...bucketNames(synth.json), ARTIFACTS_BUCKET]) await s3.createBucket(bucket);
  scratch = await mkdtemp(join(tmpdir(), 'containers-e2e-'));
  await s3.seed(ARTIFACTS_BUCKET, [['iris/model.tar.gz', await irisArtifacts(scratch)]]);

  ({ ecs: runner, engine } = await startDockerEcs({
    template: synth.json,
    pauseImage: IMAGES.base,
    platformEnvironment: S3RVER_KEYS,
    // The tasks reach the loopback S3 through the Docker bridge.
    loopbackEnvironment: { AWS_ENDPOINT_URL_S3: s3.endpoint },
    misbehave: (task) => misbehave?.(task),
  }));
  lambdas = await lambdaStates(synth, definition, {
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_ENDPOINT_URL_ECS: runner.endpoint,
    ...S3RVER_KEYS,
  });
}, 180_000);

afterAll(async () => {
  await runner?.stop();
  await engine?.close();
  await s3?.stop();
  synth?.dispose();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/**
 * The iris model trained here and packed as an archive made elsewhere would be: its entries owned by
 * uid 501 with mode 0600, which the model (uid 1000) could not read if extraction kept them.
 */
async function irisArtifacts(dir: string): Promise<Buffer> {
  const out = join(dir, 'iris-model');
  await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'containers/models/iris/train.ts', '--out', out],
    { cwd: REPO_ROOT },
  );
  const file = join(dir, 'model.tar.gz');
  await tar.c(
    {
      gzip: true,
      file,
      cwd: out,
      portable: false,
      onWriteEntry: (e) =>
        Object.assign(e, { uid: 501, gid: 20, mode: e.type === 'Directory' ? 0o700 : 0o600 }),
    },
    ['.'],
  );
  return readFile(file);
}

function request(name: string, model: string, extra: Record<string, unknown> = {}) {
  return {
    TransformJobName: name,
    ModelName: model,
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

async function execute(
  name: string,
  model: string,
  objects: Record<string, string>,
  extra: Record<string, unknown> = {},
): Promise<LocalOutcome> {
  await s3.seed(
    data,
    Object.entries(objects).map(([key, body]) => [`input/${name}/${key}`, body] as const),
  );
  return runLocally(
    definition,
    request(name, model, extra),
    { ...lambdas, [S.runPartition]: runTaskSync ?? runner.runTaskSync },
    {
      executionName: name,
      // The Distributed Map's ItemReader, which aws-local-stepfunctions does not run: the same
      // GetObject of the plan's partition items, from the loopback S3.
      readItems: async ({ Bucket, Key }) =>
        JSON.parse((await s3.storage.readAll(`s3://${Bucket}/${Key}`)).toString()),
    },
  );
}

/** The RunPartition handler for the next job, when a test needs to come between its tasks. */
let runTaskSync: ((params: Record<string, unknown>) => Promise<unknown>) | undefined;

/** Says why, with the tasks' logs, when an expectation on an outcome fails. */
function explain(name: string, outcome: LocalOutcome): string {
  const detail = outcome.status === 'FAILED' ? `${outcome.error}: ${outcome.cause}` : outcome.status;
  return `${detail}\n${JSON.stringify(tasksOf(name), null, 1).slice(0, 20_000)}`;
}

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

function tasksOf(jobName: string): TaskRecord[] {
  return runner.tasks.filter((t) => t.startedBy === jobName);
}

/** When the sidecar logged its effective parameters: the moment before its first invocation. */
function firstInvocationAt(task: TaskRecord): number | undefined {
  for (const line of task.logs.sidecar?.split('\n') ?? []) {
    if (!line.includes('effective parameters')) continue;
    return Date.parse(JSON.parse(line).time);
  }
  return undefined;
}

/** Rows `<object>,<row>,<padding>`: every record names where it came from. */
function rows(object: number, count: number): string {
  let s = '';
  for (let i = 0; i < count; i++) s += `${object},${i},${'x'.repeat((i * 7) % 41)}\n`;
  return s;
}

const OBJECTS: Record<string, string> = {
  'a.csv': rows(1, 400),
  'b.csv': rows(2, 900),
  'c.csv': rows(3, 50),
};

describe('the stack end to end, every task in real containers', () => {
  it('classifies iris with artifacts from modelDataUrl on two tasks at once, each model on 8080, ending Completed', async () => {
    const name = 'containers-iris';
    const inputs: Record<string, string> = {};
    for (const file of ['iris-1.csv', 'iris-2.csv', 'iris-3.csv'])
      inputs[file] = await readFile(join(REPO_ROOT, 'examples/iris/input', file), 'utf8');
    const outcome = await execute(name, 'iris', inputs, {
      DataProcessing: { InputFilter: '$[1:]', JoinSource: 'Input', OutputFilter: '$[0,-2,-1]' },
    });

    expect(outcome.status, explain(name, outcome)).toBe('SUCCEEDED');
    expect((outcome as { output: TransformJobDescription }).output).toMatchObject({
      TransformJobStatus: 'Completed',
      FailedObjects: [],
    });
    const labels = new Map(
      (await readFile(join(REPO_ROOT, 'examples/iris/labels.csv'), 'utf8'))
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(',') as [string, string]),
    );
    const outputs = await objectsUnder(data, `output/${name}/`);
    expect(Object.keys(outputs).sort()).toEqual(['iris-1.csv.out', 'iris-2.csv.out', 'iris-3.csv.out']);
    let right = 0;
    let total = 0;
    for (const [key, body] of Object.entries(outputs)) {
      const ids = inputs[key.replace(/\.out$/, '')]!.trim()
        .split('\n')
        .map((l) => l.split(',')[0]);
      const lines = body.trim().split('\n');
      expect(
        lines.map((l) => l.split(',')[0]),
        key,
      ).toEqual(ids);
      for (const line of lines) {
        const [id, species, probability] = line.split(',');
        expect(line).toMatch(/^\d+,(setosa|versicolor|virginica),[01]\.\d+$/);
        expect(Number(probability)).toBeGreaterThan(0);
        total++;
        if (labels.get(id!) === species) right++;
      }
    }
    expect(right / total).toBeGreaterThan(0.9);

    // Two tasks ran at the same time, each with its own model on port 8080, each with the artifacts.
    const tasks = tasksOf(name);
    expect(tasks).toHaveLength(2);
    const [a, b] = tasks as [TaskRecord, TaskRecord];
    expect(a.startedAt! < b.stoppedAt! && b.startedAt! < a.stoppedAt!).toBe(true);
    for (const task of tasks) {
      expect(task.exitCodes).toMatchObject({ 'fetch-model': 0, sidecar: 0 });
      expect(task.logs['fetch-model']).toMatch(/extracted \d+ entries/);
      const first = firstInvocationAt(task);
      expect(first).toBeDefined();
      console.info(`iris task: docker run to first invocation ${first! - task.startedAt!} ms`);
    }
  });

  it('completes a job whose model exits 143 on SIGTERM: the partition is judged by its own result', async () => {
    const name = 'containers-exit-143';
    // Like gunicorn and TorchServe: no SIGTERM handler, so the model dies of the signal when the task stops.
    misbehave = (task) =>
      task.startedBy === name ? { model: { TEST_MODEL_SIGTERM: 'default' } } : undefined;
    let outcome: LocalOutcome;
    try {
      outcome = await execute(name, 'echo', OBJECTS);
    } finally {
      misbehave = undefined;
    }

    expect(outcome.status, explain(name, outcome)).toBe('SUCCEEDED');
    const outputs = await objectsUnder(data, `output/${name}/`);
    expect(outputs).toEqual(
      Object.fromEntries(Object.entries(OBJECTS).map(([k, v]) => [`${k}.out`, v.toUpperCase()])),
    );
    for (const task of tasksOf(name)) {
      expect(task).toMatchObject({
        stopCode: 'EssentialContainerExited',
        exitCodes: { sidecar: 0, model: 143 },
      });
    }
  });

  it('completes a job redeployed between its two partitions: the old revision deregistered, the next task runs the new one', async () => {
    const name = 'containers-redeploy';
    // The second partition's RunTask waits until the first task has stopped and a redeploy has
    // registered a new revision of the family and deregistered the one the job started with, as
    // CloudFormation does when a model's task definition changes.
    let redeployed!: () => void;
    const afterRedeploy = new Promise<void>((resolve) => {
      redeployed = resolve;
    });
    let calls = 0;
    let replaced = '';
    let firstParams: Record<string, unknown> = {};
    runTaskSync = async (params) => {
      if (++calls > 1) {
        await afterRedeploy;
        return runner.runTaskSync(params);
      }
      firstParams = params;
      try {
        return await runner.runTaskSync(params);
      } finally {
        const [first] = tasksOf(name);
        replaced = first!.taskDefinitionArn;
        runner.registerTaskDefinition(String(params.TaskDefinition));
        runner.deregisterTaskDefinition(replaced);
        redeployed();
      }
    };
    let outcome: LocalOutcome;
    try {
      outcome = await execute(name, 'echo', OBJECTS);
    } finally {
      runTaskSync = undefined;
    }

    expect(outcome.status, explain(name, outcome)).toBe('SUCCEEDED');
    expect(await objectsUnder(data, `output/${name}/`)).toEqual(
      Object.fromEntries(Object.entries(OBJECTS).map(([k, v]) => [`${k}.out`, v.toUpperCase()])),
    );
    const revisions = tasksOf(name).map((t) => t.taskDefinitionArn);
    expect(revisions).toEqual([replaced, replaced.replace(/:1$/, ':2')]);
    // What a job that stored the revision's ARN would have met: ECS refuses the deregistered revision.
    await expect(runner.runTaskSync({ ...firstParams, TaskDefinition: replaced })).rejects.toThrow(
      /TaskDefinition is inactive/,
    );
  });

  it('fails a job whose model never becomes healthy, naming the model and the budget that ran out', async () => {
    const name = 'containers-never-healthy';
    misbehave = (task) =>
      task.startedBy === name ? { model: { TEST_MODEL_PING_DELAY_MS: '3600000' } } : undefined;
    let outcome: LocalOutcome;
    try {
      outcome = await execute(
        name,
        'echo',
        { 'a.csv': rows(1, 10) },
        {
          TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
          Extensions: { ModelStartupTimeoutInSeconds: 3 },
        },
      );
    } finally {
      misbehave = undefined;
    }
    expect(outcome.status, explain(name, outcome)).toBe('FAILED');
    if (outcome.status !== 'FAILED') return;
    expect(outcome.cause).toContain(name);
    expect(outcome.cause).toMatch(/healthy|\/ping/i);
    expect(outcome.cause).toMatch(
      /within 3 s, its start-up budget \(Extensions.ModelStartupTimeoutInSeconds/,
    );
    expect(await objectsUnder(data, `output/${name}/`)).toEqual({});
  });

  it('fails a job whose model exits before it ever answers /ping within seconds, not its start-up budget, naming the model and its exit code', async () => {
    const name = 'containers-model-crashes';
    // A setting the model server cannot parse: it throws while starting and exits 1, as a model
    // whose configuration or artifacts are broken does.
    misbehave = (task) =>
      task.startedBy === name ? { model: { TEST_MODEL_LATENCY_MS: 'not-a-number' } } : undefined;
    const started = Date.now();
    let outcome: LocalOutcome;
    try {
      outcome = await execute(
        name,
        'echo',
        { 'a.csv': rows(1, 10) },
        {
          TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
          Extensions: { ModelStartupTimeoutInSeconds: 600 },
        },
      );
    } finally {
      misbehave = undefined;
    }

    expect(outcome.status, explain(name, outcome)).toBe('FAILED');
    if (outcome.status !== 'FAILED') return;
    // Three attempts, none of which waited out the 600 s budget for a model that was gone.
    expect(Date.now() - started).toBeLessThan(150_000);
    expect(outcome.cause).toMatch(
      /model "echo": the model server exited before it became healthy: container "model" exited with code 1/,
    );
    for (const task of tasksOf(name)) {
      expect(task.exitCodes).toMatchObject({ model: 1, sidecar: 1 });
      expect(task.stoppedAt! - task.startedAt!).toBeLessThan(20_000);
    }
  });

  it('fails a job at once when fetch-model fails, naming it, without waiting out the start-up budget', async () => {
    const name = 'containers-fetch-fails';
    const started = Date.now();
    const outcome = await execute(
      name,
      'no-artifacts',
      { 'a.csv': rows(1, 10) },
      {
        TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
        Extensions: { ModelStartupTimeoutInSeconds: 600 },
      },
    );

    expect(outcome.status, explain(name, outcome)).toBe('FAILED');
    if (outcome.status !== 'FAILED') return;
    // Three attempts, none of which waited for a model that could never start.
    expect(Date.now() - started).toBeLessThan(120_000);
    expect(outcome.cause).toMatch(/fetch-model exited 1/);
    for (const task of tasksOf(name)) {
      expect(task.exitCodes).toMatchObject({ 'fetch-model': 1, model: undefined, sidecar: undefined });
      expect(task.logs['fetch-model']).toMatch(/^fetch-model failed: .*missing\/model\.tar\.gz/m);
      expect(task.logs['fetch-model']).not.toMatch(/expected a \.tar\.gz|sidecar failed/);
    }
  });

  it('fails a job whose model is killed mid-job, leaving no partial .out and no open upload', async () => {
    const name = 'containers-killed';
    // Every attempt's model answers slowly, and is killed (SIGKILL) once its task's sidecar has
    // started invoking it.
    misbehave = (task) => (task.startedBy === name ? { model: { TEST_MODEL_LATENCY_MS: '100' } } : undefined);
    const killer = setInterval(() => void killModelsMidJob(), 250);
    let outcome: LocalOutcome;
    try {
      outcome = await execute(
        name,
        'echo',
        { 'big.csv': rows(7, 20_000) },
        {
          TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
          MaxPayloadInMB: 1,
          BatchStrategy: 'SingleRecord',
          MaxConcurrentTransforms: 1,
        },
      );
    } finally {
      clearInterval(killer);
      misbehave = undefined;
    }
    expect(outcome.status, explain(name, outcome)).toBe('FAILED');
    if (outcome.status !== 'FAILED') return;
    expect(outcome.cause).toContain('big.csv');
    expect(tasksOf(name).map((t) => t.exitCodes.model)).toContain(137);
    expect(await objectsUnder(data, `output/${name}/`)).toEqual({});
    expect(await incompleteUploads(`s3://${data}/output/${name}/`)).toEqual([]);
  });
});

const killed = new Set<string>();

/**
 * SIGKILLs the model of every task whose sidecar has logged its effective parameters, the line it
 * writes right before its first invocation.
 */
async function killModelsMidJob(): Promise<void> {
  const ps = await docker(['ps', '--filter', `label=${RUNNER_LABEL}`, '--format', '{{.Names}}']);
  for (const sidecar of ps.stdout.split('\n').filter((n) => n.endsWith('-sidecar'))) {
    const model = sidecar.replace(/-sidecar$/, '-model');
    if (killed.has(model)) continue;
    const logs = await docker(['logs', sidecar]);
    if (!`${logs.stdout}${logs.stderr}`.includes('effective parameters')) continue;
    killed.add(model);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await docker(['kill', '--signal', 'KILL', model]);
  }
}
