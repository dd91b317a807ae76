import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerRunArgs, LOCAL_RUN_LABEL, localRunKey } from '../../src/local/docker-model';
import { startApi } from '../api/server';
import { runCli } from '../support/cli';
import { makeTempDir, type TempDir } from '../support/tmp';

/**
 * `--model-image` where no Docker engine can run it (these run on any machine, Docker or not), and
 * the `docker run` command line a model container gets. The image itself running in Docker is
 * tested in test/containers/local-image.test.ts.
 */

const dockerCliPresent = spawnSync('docker', ['--version']).status === 0;

let dir: TempDir;
let jobFile: string;
let emptyBin: string;
beforeAll(async () => {
  dir = await makeTempDir('bt-docker-model');
  await mkdir(join(dir.path, 'in'));
  await writeFile(join(dir.path, 'in', 'a.csv'), '1,2\n');
  // A PATH on which no docker CLI is found (the CLI itself runs from node's absolute path).
  emptyBin = join(dir.path, 'bin');
  await mkdir(emptyBin);
  jobFile = join(dir.path, 'job.json');
  await writeFile(
    jobFile,
    JSON.stringify({
      TransformJobName: 'no-docker',
      ModelName: 'some-image-model',
      TransformInput: {
        DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `${dir.uri}in/` } },
        SplitType: 'Line',
      },
      TransformOutput: { S3OutputPath: `${dir.uri}out/` },
      TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
    }),
  );
});
afterAll(() => dir.remove());

describe('run --local --model-image without a Docker engine', () => {
  it('no docker CLI on PATH: exit 2, naming the missing docker CLI, and nothing run or written', async () => {
    const work = join(dir.path, 'work-no-cli');
    const r = await runCli(
      ['run', jobFile, '--local', '--model-image', 'iris-model:test', '--work-dir', work, '--json'],
      { env: { PATH: emptyBin } },
    );
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/a model image needs Docker, and no docker CLI was found on PATH/);
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(last).toEqual({
      TransformJobStatus: 'Invalid',
      Problems: [{ path: '--model-image', message: expect.stringMatching(/no docker CLI was found/) }],
    });
    expect(existsSync(work)).toBe(false);
    expect(existsSync(join(dir.path, 'out'))).toBe(false);
  });

  it.skipIf(!dockerCliPresent)(
    'a docker CLI whose engine does not answer (DOCKER_HOST pointing nowhere): exit 2, naming the engine and what docker said',
    async () => {
      const work = join(dir.path, 'work-no-engine');
      const r = await runCli(
        ['run', jobFile, '--local', '--model-image', 'iris-model:test', '--work-dir', work],
        { env: { DOCKER_HOST: `unix://${join(dir.path, 'no-such.sock')}`, DOCKER_CONTEXT: '' } },
      );
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(
        /a model image needs Docker, and the Docker engine does not answer \(docker version: .*no-such\.sock/,
      );
      expect(r.stderr).not.toMatch(/\n\s+at /); // one line, no stack trace
      expect(existsSync(work)).toBe(false);
    },
  );

  it('--model-image with another model option is refused', async () => {
    const r = await runCli(['run', jobFile, '--local', '--model-image', 'x:1', '--model', 'iris']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/give only one of --model, --model-command, --model-url and --model-image/);
  });
});

describe('api --local: a created model whose image cannot run here', () => {
  it('without Docker and without --model-command, CreateTransformJob is refused naming the missing docker CLI', async () => {
    const api = await startApi([], { env: { PATH: emptyBin } });
    try {
      const call = async (op: string, body: unknown) => {
        const res = await fetch(api.url, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-amz-json-1.1', 'X-Amz-Target': `SageMaker.${op}` },
          body: JSON.stringify(body),
        });
        return { status: res.status, body: (await res.json()) as Record<string, string> };
      };
      expect(
        (await call('CreateModel', { ModelName: 'imaged', PrimaryContainer: { Image: 'iris-model:test' } }))
          .status,
      ).toBe(200);
      const job = JSON.parse(await readFile(jobFile, 'utf8'));
      const r = await call('CreateTransformJob', {
        ...job,
        TransformJobName: 'api-no-docker',
        ModelName: 'imaged',
      });
      expect(r.status).toBe(400);
      expect(r.body.__type).toBe('ValidationException');
      expect(r.body.message).toMatch(
        /model "imaged" has the image "iris-model:test", which cannot run on this machine \(a model image needs Docker, and no docker CLI was found on PATH/,
      );
    } finally {
      await api.stop();
    }
  });
});

describe('the docker run command line of a model container', () => {
  const args = dockerRunArgs({
    image: 'registry.example/model:1',
    worker: 'worker-000',
    jobName: 'j',
    runDir: '/work/j',
    modelDir: '/work/j/model,odd"name',
    environment: { SAGEMAKER_BATCH: 'true', MULTI_LINE: 'a\nb=c' },
    logFile: '/dev/null',
    name: 'bt-j-w0',
    hostPort: 40123,
  });

  it('ends with the image and `serve`, as SageMaker starts an inference image', () => {
    expect(args.slice(-2)).toEqual(['registry.example/model:1', 'serve']);
  });

  it("publishes the container's 8080 on loopback only", () => {
    expect(args[args.indexOf('--publish') + 1]).toBe('127.0.0.1:40123:8080');
  });

  it('mounts the artifacts read-only at /opt/ml/model, the path quoted as --mount CSV wants', () => {
    expect(args[args.indexOf('--mount') + 1]).toBe(
      'type=bind,"source=/work/j/model,odd""name",target=/opt/ml/model,readonly',
    );
  });

  it('passes every variable whole (a value with a newline or "=" included), removes itself, and carries its run label', () => {
    expect(args).toEqual(expect.arrayContaining(['--rm', '--init', '--env', 'SAGEMAKER_BATCH=true']));
    expect(args[args.lastIndexOf('--env') + 1]).toBe('MULTI_LINE=a\nb=c');
    expect(args).toContain(`${LOCAL_RUN_LABEL}=${localRunKey('/work/j')}`);
  });

  it('mounts nothing without artifacts: the image keeps its own /opt/ml/model', () => {
    const bare = dockerRunArgs({
      image: 'i',
      worker: 'w',
      jobName: 'j',
      runDir: '/r',
      environment: {},
      logFile: '/dev/null',
      name: 'n',
      hostPort: 1,
    });
    expect(bare).not.toContain('--mount');
  });
});
