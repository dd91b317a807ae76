import * as ecs from 'aws-cdk-lib/aws-ecs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identityOfArn } from '../../src/api/arns';
import { DeployedTransformJobs, deployedModelRegistry } from '../../src/api/deployed-transform-jobs';
import { type ApiServer, startApiServer } from '../../src/api/server';
import { Transformer } from '../../src/client/transformer';
import { SIDECAR_ENTRY } from '../../src/local/worker';
import type { BatchTransformProps } from '../../lib/batch-transform';
import { resolve, stateMachineDefinition } from '../cdk/definition';
import { bucketName, bucketNames, lambdaStates } from '../cdk/local-deployment';
import { LocalEcs } from '../cdk/local-ecs';
import { STATE_NAMES as S } from '../cdk/local-execution';
import { type Synthesized, synthesize } from '../cdk/synth';
import { TEST_MODEL_COMMAND } from '../fixtures/models/start';
import { type S3Harness, startS3Server } from '../support/s3-server';
import { LocalStepFunctions } from './local-step-functions';
import { boto3Missing, clientEnv, run } from './server';
import { ROOT } from '../support/cli';
import { join } from 'node:path';

/**
 * `batch-transform api`'s deployed back end against the synthesized stack: boto3 talks to the server,
 * the server to Step Functions through the typed client, and Step Functions is the synthesized
 * definition executed by aws-local-stepfunctions with the real Lambda handlers, a local ECS running
 * the real sidecar beside the test model, and S3 on loopback (as test/cdk/e2e.test.ts runs it).
 */

const SCENARIOS = join(ROOT, 'test', 'api', 'boto3_scenarios.py');
const missingBoto3 = boto3Missing();
if (missingBoto3) console.warn(`test/api/deployed-stack.test.ts skipped: ${missingBoto3}`);

const MODEL_IMAGE = 'registry.invalid/test-model:1';
const SIDECAR_IMAGE = 'registry.invalid/batch-transform-sidecar:1';
/** s3rver's built-in account: not a secret, the harness accepts only it. */
const S3RVER_KEYS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
const STATE_MACHINE_ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:BatchTransform-Lifecycle-local';

const props: BatchTransformProps = {
  models: {
    echo: { image: ecs.ContainerImage.fromRegistry(MODEL_IMAGE), environment: { TEST_MODEL_UPPERCASE: '1' } },
  },
  sidecarImage: ecs.ContainerImage.fromRegistry(SIDECAR_IMAGE),
  // Created models may use the test registry's images (the default is the account's ECR repositories).
  createdModelImages: ['registry.invalid/*'],
};

describe.skipIf(missingBoto3 !== undefined)(
  'batch-transform api on the synthesized stack, with boto3',
  () => {
    let synth: Synthesized;
    let s3: S3Harness;
    let localEcs: LocalEcs;
    let sfn: LocalStepFunctions;
    let api: ApiServer;
    let data: string;
    let modelsRoot: string;

    beforeAll(async () => {
      const starting = startS3Server({ buckets: [] });
      synth = synthesize(props, { nag: false });
      const definition = stateMachineDefinition(synth.json);
      data = bucketName(synth, synth.construct.storage.dataBucket!);
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
      });
      const lambdas = await lambdaStates(synth, definition, {
        AWS_REGION: 'us-east-1',
        AWS_ENDPOINT_URL_S3: s3.endpoint,
        AWS_ENDPOINT_URL_ECS: localEcs.endpoint,
        ...S3RVER_KEYS,
      });
      sfn = new LocalStepFunctions(
        STATE_MACHINE_ARN,
        definition,
        {
          ...lambdas,
          [S.runPartition]: localEcs.runTaskSync,
        },
        // The Distributed Map's ItemReader: the same GetObject of the plan's partition items.
        async ({ Bucket, Key }) => JSON.parse((await s3.storage.readAll(`s3://${Bucket}/${Key}`)).toString()),
      );
      const transformer = new Transformer({
        stateMachineArn: STATE_MACHINE_ARN,
        clients: { sfn },
        storage: s3.storage,
      });
      const jobs = await DeployedTransformJobs.open(transformer);
      // What `api --stack` reads from the stack's ModelsRoot and CreatedModelImages outputs.
      const created = synth.construct.modelTasks.createdModels;
      modelsRoot = resolve(
        synth.stack.resolve(synth.construct.modelTasks.createdModelsRoot),
        synth.json,
      ) as string;
      api = await startApiServer({
        jobs,
        models: await deployedModelRegistry(transformer, identityOfArn(STATE_MACHINE_ARN)!, {
          modelsRoot,
          allowedImages: created.images,
        }),
        port: 0,
      });
      // Synthesis is CPU-bound: on a busy two-core machine it alone can take half a minute.
    }, 180_000);

    afterAll(async () => {
      await api?.close();
      await sfn?.settled();
      await localEcs?.stop();
      await s3?.stop();
      synth?.dispose();
    });

    it('runs create_transform_job, the waiter, describe_transform_job and list_transform_jobs on the stack', async () => {
      const name = 'api-on-stack';
      await s3.seed(data, [
        [`input/${name}/a.csv`, 'one,1\ntwo,2\n'],
        [`input/${name}/b.csv`, 'three,3\n'],
      ]);
      const request = {
        TransformJobName: name,
        ModelName: 'echo',
        MaxPayloadInMB: 1,
        BatchStrategy: 'MultiRecord',
        MaxConcurrentTransforms: 2,
        Environment: {},
        TransformInput: {
          DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `s3://${data}/input/${name}/` } },
          ContentType: 'text/csv',
          SplitType: 'Line',
          CompressionType: 'None',
        },
        TransformOutput: { S3OutputPath: `s3://${data}/output/${name}/`, AssembleWith: 'Line' },
        TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 2 },
      };
      const out = await run(
        'python3',
        [SCENARIOS, 'deployed', JSON.stringify({ request })],
        clientEnv(api.url),
        240_000,
      );
      const r = JSON.parse(out.trim().split('\n').pop()!);
      const arn = `arn:aws:sagemaker:eu-west-1:123456789012:transform-job/${name}`;
      expect(r.created).toEqual({ TransformJobArn: arn });
      expect(r.waited).toBe('success');
      expect(r.described).toMatchObject({
        TransformJobName: name,
        TransformJobArn: arn,
        TransformJobStatus: 'Completed',
        ModelName: 'echo',
        TransformInput: request.TransformInput,
        TransformOutput: request.TransformOutput,
        TransformResources: request.TransformResources,
        CreationTime: { datetime: expect.any(Number) },
        TransformStartTime: { datetime: expect.any(Number) },
        TransformEndTime: { datetime: expect.any(Number) },
      });
      expect(r.listed.TransformJobSummaries).toEqual([
        expect.objectContaining({ TransformJobName: name, TransformJobStatus: 'Completed' }),
      ]);
      expect(r.duplicate.code).toBe('ResourceInUse');
      const outputs: Record<string, string> = {};
      for await (const o of s3.storage.list(`s3://${data}/output/${name}/`))
        outputs[o.uri.slice(`s3://${data}/output/${name}/`.length)] = (
          await s3.storage.readAll(o.uri)
        ).toString('utf8');
      expect(outputs).toEqual({ 'a.csv.out': 'ONE,1\nTWO,2\n', 'b.csv.out': 'THREE,3\n' });
    }, 300_000);

    it("runs create_model, then jobs with the created model on a task definition registered once from the declared models' layout, then delete_model", async () => {
      const model = 'created-echo';
      const names = ['created-model-a', 'created-model-b'];
      const requests = names.map((name) => ({
        TransformJobName: name,
        ModelName: model,
        TransformInput: {
          DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `s3://${data}/input/${name}/` } },
          ContentType: 'text/csv',
          SplitType: 'Line',
        },
        TransformOutput: { S3OutputPath: `s3://${data}/output/${name}/`, AssembleWith: 'Line' },
        TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
      }));
      for (const name of names) await s3.seed(data, [[`input/${name}/a.csv`, `${name},1\n`]]);
      const registrationsBefore = localEcs.apiCalls.filter(
        (c) => c.action === 'RegisterTaskDefinition',
      ).length;

      const out = await run(
        'python3',
        [
          SCENARIOS,
          'deployed-model',
          JSON.stringify({
            model,
            image: MODEL_IMAGE,
            environment: { TEST_MODEL_UPPERCASE: '1' },
            refusedImage: 'docker.io/library/someone-elses:1',
            requests,
          }),
        ],
        clientEnv(api.url),
        240_000,
      );
      const r = JSON.parse(out.trim().split('\n').pop()!);
      const modelArn = `arn:aws:sagemaker:eu-west-1:123456789012:model/${model}`;
      expect(r.created).toEqual({ ModelArn: modelArn });
      expect(r.duplicate).toEqual({
        code: 'ValidationException',
        message: `Cannot create already existing model "${modelArn}".`,
      });
      expect(r.refusedImage.code).toBe('ValidationException');
      expect(r.refusedImage.message).toContain('PrimaryContainer.Image');
      expect(r.describedModel).toMatchObject({
        ModelName: model,
        ModelArn: modelArn,
        PrimaryContainer: { Image: MODEL_IMAGE, Environment: { TEST_MODEL_UPPERCASE: '1' } },
      });
      expect(r.listedModels).toEqual([model]);
      expect(r.jobs).toEqual(names.map(() => ({ waited: 'success', status: 'Completed', reason: null })));
      for (const name of names) {
        // The created model's Environment reached the model: it upper-cases.
        expect((await s3.storage.readAll(`s3://${data}/output/${name}/a.csv.out`)).toString()).toBe(
          `${name.toUpperCase()},1\n`,
        );
      }

      // One registration for both jobs, in the created models' family, run by both jobs' tasks.
      const registrations = localEcs.apiCalls.filter((c) => c.action === 'RegisterTaskDefinition');
      expect(registrations.length - registrationsBefore).toBe(1);
      const prefix = synth.construct.modelTasks.createdModelLaunch.familyPrefix;
      const family = String(registrations.at(-1)!.input.family);
      expect(family.startsWith(prefix)).toBe(true);
      const tasks = localEcs.tasks.filter((t) => names.includes(t.startedBy));
      expect(tasks.map((t) => t.taskDefinitionArn)).toEqual(
        names.map(() => expect.stringContaining(`:task-definition/${family}:1`)),
      );

      expect(r.deleted).toEqual({});
      expect(r.describeDeleted.code).toBe('ValidationException');
      expect(await s3.storage.head(`${modelsRoot}${model}.json`)).toBeUndefined();
    }, 300_000);
  },
);
