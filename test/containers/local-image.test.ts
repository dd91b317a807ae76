import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../lib/paths';
import { LOCAL_RUN_LABEL, localRunKey } from '../../src/local/docker-model';
import { localRunPaths } from '../../src/local/runner';
import { startApi } from '../api/server';
import { CLI, ROOT, runCli, lastJson } from '../support/cli';
import { partialFiles, waitFor } from '../support/run-processes';
import { makeTempDir, type TempDir } from '../support/tmp';
import { docker, dockerAvailable } from './ecs-runner';
import { IMAGES } from './images';

/**
 * `batch-transform run --local --model-image` and `api --local` running the project's own model
 * images (setup.sh builds them) in Docker, beside sidecars that run as processes on this machine:
 * what the container is given (`serve`, the SAGEMAKER_* environment, the artifacts at
 * /opt/ml/model, a loopback port), the outputs, and that no container outlives its run however
 * the run ends.
 */

const run = promisify(execFile);

let dir: TempDir;
/** iris artifacts whose class names are renamed, so outputs show which model answered. */
let irisArtifacts: string;

beforeAll(async () => {
  if (!(await dockerAvailable()))
    throw new Error('no Docker engine answers: run `bash test/containers/setup.sh` (as root) first');
  dir = await makeTempDir('bt-local-image');
  irisArtifacts = await renamedIrisArtifacts(dir.path);
  await mkdir(join(dir.path, 'iris-in'));
  const example = join(ROOT, 'examples/iris/input');
  let rows: string[] = [];
  for (const f of (await readdir(example)).sort())
    rows = rows.concat((await readFile(join(example, f), 'utf8')).trim().split('\n'));
  // Two objects, so two instances each get one.
  await writeFile(join(dir.path, 'iris-in', 'a.csv'), `${rows.slice(0, 75).join('\n')}\n`);
  await writeFile(join(dir.path, 'iris-in', 'b.csv'), `${rows.slice(75).join('\n')}\n`);
  await mkdir(join(dir.path, 'echo-in'));
  for (const k of ['a', 'b']) {
    let s = '';
    for (let i = 0; i < 300; i++) s += `${k} row ${i}\n`;
    await writeFile(join(dir.path, 'echo-in', `${k}.txt`), s);
  }
}, 120_000);
afterAll(() => dir?.remove());

/** The trained iris model with "-from-artifacts" on every class name, as a model.tar.gz owned by uid 501, mode 0600. */
async function renamedIrisArtifacts(at: string): Promise<string> {
  const out = join(at, 'iris-model');
  await run(process.execPath, ['--import', 'tsx', 'containers/models/iris/train.ts', '--out', out], {
    cwd: REPO_ROOT,
  });
  const model = JSON.parse(await readFile(join(out, 'model.json'), 'utf8'));
  model.classNames = model.classNames.map((c: string) => `${c}-from-artifacts`);
  await writeFile(join(out, 'model.json'), JSON.stringify(model));
  const file = join(at, 'model.tar.gz');
  // As a Mac's tar makes it: the container's user (uid 1000) must still read it.
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
  return `file://${file}`;
}

async function writeJob(name: string, fields: Record<string, unknown>): Promise<string> {
  const file = join(dir.path, `${name}.json`);
  await writeFile(
    file,
    JSON.stringify({
      TransformJobName: name,
      TransformOutput: { S3OutputPath: `${dir.uri}${name}/out/`, AssembleWith: 'Line' },
      TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 2 },
      ...fields,
    }),
  );
  return file;
}

const irisJob = (name: string) =>
  writeJob(name, {
    ModelName: 'iris',
    TransformInput: {
      DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `${dir.uri}iris-in/` } },
      ContentType: 'text/csv',
      SplitType: 'Line',
    },
    DataProcessing: { InputFilter: '$[1:]', JoinSource: 'Input', OutputFilter: '$[0,-2,-1]' },
  });

const echoJob = (name: string, extra: Record<string, unknown> = {}) =>
  writeJob(name, {
    ModelName: 'echo',
    BatchStrategy: 'MultiRecord',
    MaxPayloadInMB: 2,
    MaxConcurrentTransforms: 2,
    TransformInput: {
      DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `${dir.uri}echo-in/` } },
      ContentType: 'text/plain',
      SplitType: 'Line',
    },
    ...extra,
  });

const work = (name: string) => join(dir.path, name, 'work');

/** 300 records per object, one per invocation, 50 ms each: a run of several seconds. */
const slow = { BatchStrategy: 'SingleRecord', Environment: { TEST_MODEL_LATENCY_MS: '50' } };

/** Resolves once the run writes outputs: its sidecars are up and transforming. */
async function transforming(name: string): Promise<void> {
  await waitFor(
    `job ${name} to write outputs`,
    async () => ((await partialFiles(join(dir.path, name), true)).length > 0 ? true : undefined),
    60_000,
  );
}

/** The containers labelled with a job name, running or not. */
async function containersOf(job: string): Promise<string[]> {
  const r = await docker(['ps', '--all', '--quiet', '--filter', `label=batch-transform.job=${job}`]);
  return r.stdout.split('\n').filter(Boolean);
}

async function outputs(name: string): Promise<Record<string, string>> {
  const out = join(dir.path, name, 'out');
  const files = (await readdir(out)).sort();
  return Object.fromEntries(
    await Promise.all(files.map(async (f) => [f, await readFile(join(out, f), 'utf8')])),
  );
}

/** Starts the CLI and resolves once the run's containers are up; the caller ends it. */
async function startRun(args: readonly string[], job: string, containers: number) {
  const child: ChildProcess = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => {
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const ids = await waitFor(
    `${containers} containers of job ${job}`,
    async () => {
      const ids = await containersOf(job);
      return ids.length === containers ? ids : undefined;
    },
    60_000,
  );
  return { child, exited, ids, output: () => ({ stdout, stderr }) };
}

describe('run --local --model-image', () => {
  it('the iris image with a model.tar.gz on two instances: Completed, answered by the artifacts, the same outputs as the iris process, no container left', async () => {
    const name = 'iris-image';
    const file = await irisJob(name);
    const started = Date.now();
    const r = await runCli(
      [
        'run',
        file,
        '--local',
        '--model-image',
        IMAGES.iris,
        '--model-data',
        irisArtifacts,
        '--work-dir',
        work(name),
        '--json',
      ],
      { timeoutMs: 120_000 },
    );
    const seconds = (Date.now() - started) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r.stdout).TransformJobStatus).toBe('Completed');
    const viaImage = await outputs(name);
    expect(Object.keys(viaImage)).toEqual(['a.csv.out', 'b.csv.out']);
    const lines = Object.values(viaImage).join('').trim().split('\n');
    expect(lines).toHaveLength(150);
    for (const line of lines)
      expect(line).toMatch(/^\d+,(setosa|versicolor|virginica)-from-artifacts,[01]\.\d+$/);
    expect(await containersOf(name)).toEqual([]);

    // The same job and artifacts with the iris server as a process: the same bytes.
    const asProcess = 'iris-process';
    const processFile = await irisJob(asProcess);
    const p = await runCli(
      [
        'run',
        processFile,
        '--local',
        '--model',
        'iris',
        '--model-data',
        irisArtifacts,
        '--work-dir',
        work(asProcess),
      ],
      { timeoutMs: 120_000 },
    );
    expect(p.code, p.stderr).toBe(0);
    expect(await outputs(asProcess)).toEqual(viaImage);
    process.stderr.write(
      `iris image, 2 instances, 150 records: ${seconds.toFixed(1)} s from CLI start to exit\n`,
    );
  });

  it('each instance gets its own container: `serve`, the SAGEMAKER_* batch variables and the job Environment, the artifacts read-only at /opt/ml/model, 8080 on its own loopback port; a model exiting 143 on SIGTERM still ends Completed', async () => {
    const name = 'echo-image';
    const file = await echoJob(name, {
      // TEST_MODEL_SIGTERM=default: the server dies of SIGTERM (exit 143) as gunicorn does.
      // One invocation per object (MultiRecord, 2 MB): 3 s each leaves time to inspect the containers.
      Environment: {
        TEST_MODEL_UPPERCASE: '1',
        TEST_MODEL_LATENCY_MS: '3000',
        TEST_MODEL_SIGTERM: 'default',
      },
    });
    const running = await startRun(
      [
        'run',
        file,
        '--local',
        '--model-image',
        IMAGES.testModel,
        '--model-data',
        irisArtifacts,
        '--work-dir',
        work(name),
        '--json',
      ],
      name,
      2,
    );
    const inspected = JSON.parse((await docker(['inspect', ...running.ids])).stdout) as Array<{
      Name: string;
      Config: { Cmd: string[]; Env: string[]; Labels: Record<string, string> };
      Mounts: Array<{ Type: string; Destination: string; RW: boolean }>;
      HostConfig: {
        PortBindings: Record<string, Array<{ HostIp: string; HostPort: string }>>;
        Init: boolean;
      };
    }>;
    const runKey = localRunKey(localRunPaths(`file://${work(name)}/`, name).runDir);
    for (const c of inspected) {
      expect(c.Config.Cmd).toEqual(['serve']);
      expect(c.Config.Env).toEqual(
        expect.arrayContaining([
          'SAGEMAKER_BATCH=true',
          'SAGEMAKER_MAX_PAYLOAD_IN_MB=2',
          'SAGEMAKER_BATCH_STRATEGY=MULTI_RECORD',
          'SAGEMAKER_MAX_CONCURRENT_TRANSFORMS=2',
          'TEST_MODEL_UPPERCASE=1',
        ]),
      );
      expect(c.Mounts).toEqual([
        expect.objectContaining({ Type: 'bind', Destination: '/opt/ml/model', RW: false }),
      ]);
      expect(c.HostConfig.PortBindings['8080/tcp']).toEqual([
        { HostIp: '127.0.0.1', HostPort: expect.any(String) },
      ]);
      expect(c.HostConfig.Init).toBe(true);
      expect(c.Config.Labels[LOCAL_RUN_LABEL]).toBe(runKey);
    }
    const ports = inspected.map((c) => c.HostConfig.PortBindings['8080/tcp']![0]!.HostPort);
    expect(new Set(ports).size).toBe(2);

    const [code] = await running.exited;
    const { stdout, stderr } = running.output();
    expect(code, stderr).toBe(0);
    expect(lastJson(stdout).TransformJobStatus).toBe('Completed');
    const out = await outputs(name);
    expect(out['a.txt.out']).toContain('A ROW 299\n');
    expect(out['b.txt.out']).toContain('B ROW 0\n');
    expect(await containersOf(name)).toEqual([]);
  });

  it('a model that never becomes healthy: Failed, the reason naming the container and the start-up budget; no container left', async () => {
    const name = 'never-healthy';
    const file = await echoJob(name, {
      Environment: { TEST_MODEL_PING_DELAY_MS: '600000' },
      Extensions: { ModelStartupTimeoutInSeconds: 3 },
    });
    const r = await runCli(
      ['run', file, '--local', '--model-image', IMAGES.testModel, '--work-dir', work(name), '--json'],
      {
        timeoutMs: 120_000,
      },
    );
    expect(r.code, r.stderr).toBe(1);
    const d = lastJson(r.stdout);
    expect(d.TransformJobStatus).toBe('Failed');
    expect(d.FailureReason).toMatch(/did not answer GET \/ping with 200 within 3 s, its start-up budget/);
    expect(d.FailureReason).toMatch(
      /its model container bt-never-healthy-[0-9a-f]{8}-worker-00\d \(image batch-transform-test-model:test\)/,
    );
    expect(await containersOf(name)).toEqual([]);
  });

  it('SIGTERM stops the job: Stopped, exit 1, and its containers removed', async () => {
    const name = 'image-sigterm';
    const file = await echoJob(name, slow);
    const running = await startRun(
      ['run', file, '--local', '--model-image', IMAGES.testModel, '--work-dir', work(name), '--json'],
      name,
      2,
    );
    await transforming(name);
    running.child.kill('SIGTERM');
    const [code] = await running.exited;
    const { stdout, stderr } = running.output();
    expect(code, stderr).toBe(1);
    expect(lastJson(stdout).TransformJobStatus).toBe('Stopped');
    expect(await containersOf(name)).toEqual([]);
  });

  it('after SIGKILL of the CLI its containers end with their sidecars; a leftover of a dead run is removed by the next run of the name', async () => {
    const name = 'image-sigkill';
    const file = await echoJob(name, { Environment: { TEST_MODEL_LATENCY_MS: '50' } });
    const args = [
      'run',
      file,
      '--local',
      '--model-image',
      IMAGES.testModel,
      '--work-dir',
      work(name),
      '--json',
    ];
    const running = await startRun(args, name, 2);
    running.child.kill('SIGKILL');
    await running.exited;
    await waitFor(
      'the containers of the killed run to end',
      async () => ((await containersOf(name)).length === 0 ? true : undefined),
      30_000,
    );

    // A container that outlived its run (a model that ignores SIGTERM, a sidecar killed before it
    // could stop it): named and labelled as the run names and labels its own, so a run that did not
    // remove it first could not start its worker-000.
    const runKey = localRunKey(localRunPaths(`file://${work(name)}/`, name).runDir);
    const leftover = await docker([
      'run',
      '--detach',
      '--name',
      `bt-${name}-${runKey.slice(0, 8)}-worker-000`,
      '--label',
      `${LOCAL_RUN_LABEL}=${runKey}`,
      '--label',
      `batch-transform.job=${name}`,
      IMAGES.testModel,
      'serve',
    ]);
    expect(leftover.code, leftover.stderr).toBe(0);
    expect(await containersOf(name)).toHaveLength(1);

    const again = await runCli(args, { timeoutMs: 120_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(lastJson(again.stdout).TransformJobStatus).toBe('Completed');
    expect(await containersOf(name)).toEqual([]);
  });
});

describe('run --local --model-image, refused before anything runs', () => {
  it('an image neither on this machine nor pullable: exit 2, naming the image and what the pull said', async () => {
    const name = 'missing-image';
    const file = await echoJob(name);
    const image = `batch-transform-no-such-image-${process.pid}:test`;
    const r = await runCli(['run', file, '--local', '--model-image', image, '--work-dir', work(name)], {
      timeoutMs: 120_000,
    });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`batch-transform: pulling ${image}`);
    expect(r.stderr).toMatch(
      new RegExp(`the image ${image} is not on this machine and could not be pulled: \\S`),
    );
    expect(await containersOf(name)).toEqual([]);
  });
});

describe('api --local', () => {
  it("runs a created model's image in Docker when the engine holds it, with its ModelDataUrl", async () => {
    const api = await startApi([]);
    const call = async (op: string, body: unknown) => {
      const res = await fetch(api.url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-amz-json-1.1', 'X-Amz-Target': `SageMaker.${op}` },
        body: JSON.stringify(body),
      });
      const json = (await res.json()) as Record<string, unknown>;
      if (res.status !== 200) throw new Error(`${op}: ${JSON.stringify(json)}`);
      return json;
    };
    try {
      await call('CreateModel', {
        ModelName: 'iris-in-docker',
        PrimaryContainer: { Image: IMAGES.iris, ModelDataUrl: irisArtifacts },
      });
      const name = 'api-image';
      const request = JSON.parse(await readFile(await irisJob(name), 'utf8'));
      await call('CreateTransformJob', { ...request, ModelName: 'iris-in-docker' });
      const d = await waitFor(
        'the job to end',
        async () => {
          const d = await call('DescribeTransformJob', { TransformJobName: name });
          return d.TransformJobStatus === 'InProgress' ? undefined : d;
        },
        120_000,
      );
      expect(d.TransformJobStatus, String(d.FailureReason)).toBe('Completed');
      expect(api.log()).toContain(`(model image in Docker: ${IMAGES.iris})`);
      const lines = Object.values(await outputs(name))
        .join('')
        .trim()
        .split('\n');
      expect(lines).toHaveLength(150);
      for (const line of lines) expect(line).toMatch(/-from-artifacts,/);
      expect(await containersOf(name)).toEqual([]);
    } finally {
      await api.stop();
    }
  });
});
