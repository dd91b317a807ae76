/**
 * Models made with CreateModel on a deployed stack, as Validate resolves and registers them: the
 * model read from the models location, the deployment's image rule, and task definitions reused by
 * family (the ECS registry stood in for behind its interface, as RunTask's TaskControl is).
 */
import { DescribeTaskDefinitionCommand } from '@aws-sdk/client-ecs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreatedModel, CreatedModelLaunch, DeploymentContext } from '../../src/contract/deployment';
import { createdModelUri } from '../../src/contract/layout';
import type { TaskDefinitionLayout } from '../../src/deploy/task-layout';
import { resolveCapacity } from '../../src/job/instances';
import { JobValidationError } from '../../src/job/problems';
import {
  createdModelLayout,
  ensureTaskDefinition,
  type TaskDefinitionRegistry,
} from '../../src/lifecycle/created-models';
import { validateJob } from '../../src/lifecycle/validate';
import { FileStorage } from '../../src/storage/file';
import { EcsTaskDefinitions } from '../../lambdas/shared/ecs-task-definitions';
import { makeTempDir, type TempDir } from '../support/tmp';

let dir: TempDir;
const storage = new FileStorage();
let ctx: DeploymentContext;

const created = (name: string, image: string, env?: Record<string, string>): CreatedModel => ({
  ModelName: name,
  Image: image,
  ...(env ? { Environment: env } : {}),
  ModelArn: `arn:aws:sagemaker:eu-west-1:123456789012:model/${name}`,
  CreationTime: '2026-12-03T12:00:00.000Z',
  request: {},
});

const request = (jobName: string, modelName: string) => ({
  TransformJobName: jobName,
  ModelName: modelName,
  Environment: { FROM_JOB: 'j' },
  TransformInput: { DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: 's3://data/in/' } } },
  TransformOutput: { S3OutputPath: 's3://data/out/' },
  TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
});

beforeAll(async () => {
  dir = await makeTempDir('created-models');
  ctx = {
    models: { declared: { environment: { DECLARED: '1' } } },
    enabledInstanceTypes: [],
    maxInstanceCount: 100,
    workRoot: `${dir.uri}jobs/`,
    jobNamesRoot: `${dir.uri}job-names/`,
    local: false,
    createdModels: { images: ['123456789012.dkr.ecr.*.amazonaws.com/*'] },
  };
  const put = (m: CreatedModel) =>
    storage.put(createdModelUri(`${dir.uri}models/`, m.ModelName), JSON.stringify(m));
  await put(
    created('mine', '123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/mine:2', { THRESHOLD: '0.4' }),
  );
  await put(created('elsewhere', '999999999999.dkr.ecr.eu-west-1.amazonaws.com/theirs:1'));
  await put(created('declared', '123456789012.dkr.ecr.eu-west-1.amazonaws.com/shadow:1'));
});
afterAll(async () => dir.remove());

describe('Validate with created models', () => {
  it('resolves a ModelName the deployment does not declare from the models location, with its environment under the job', async () => {
    const { job, createdModel } = await validateJob({ request: request('job-mine', 'mine') }, ctx, storage);
    expect(createdModel?.Image).toBe('123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/mine:2');
    expect(job.modelEnvironment).toEqual(
      expect.arrayContaining([
        { Name: 'THRESHOLD', Value: '0.4' },
        { Name: 'FROM_JOB', Value: 'j' },
      ]),
    );
  });

  it('prefers the declared model of the same name (its task definitions came with the stack)', async () => {
    const { job, createdModel } = await validateJob(
      { request: request('job-declared', 'declared') },
      ctx,
      storage,
    );
    expect(createdModel).toBeUndefined();
    expect(job.modelEnvironment).toContainEqual({ Name: 'DECLARED', Value: '1' });
  });

  it.each([
    ['elsewhere', /image "999999999999\.dkr\.ecr.*does not allow created models/],
    ['nobody', /no model named "nobody"/],
  ])('refuses model %s on ModelName', async (model, message) => {
    const failure = await validateJob({ request: request(`job-${model}`, model) }, ctx, storage).catch(
      (e) => e,
    );
    expect(failure).toBeInstanceOf(JobValidationError);
    const problem = (failure as JobValidationError).problems.find((p) => p.path === 'ModelName');
    expect(problem?.message).toMatch(message);
  });

  it('ignores created models where the deployment keeps none', async () => {
    const { createdModels: _none, ...without } = ctx;
    const failure = await validateJob({ request: request('job-none', 'mine') }, without, storage).catch(
      (e) => e,
    );
    expect((failure as JobValidationError).problems.map((p) => p.path)).toEqual(['ModelName']);
  });
});

describe('task definitions of created models', () => {
  const launch: CreatedModelLaunch = {
    familyPrefix: 'Stack-Models-created-',
    platform: {
      sidecarImage: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/sidecar:1',
      taskRoleArn: 'arn:aws:iam::123456789012:role/task',
      executionRoleArn: 'arn:aws:iam::123456789012:role/execution',
      logGroup: 'task-logs',
      region: 'eu-west-1',
    },
  };

  class Registry implements TaskDefinitionRegistry {
    readonly families = new Map<string, TaskDefinitionLayout[]>();
    async find(family: string) {
      const revisions = this.families.get(family);
      return revisions
        ? `arn:aws:ecs:eu-west-1:123456789012:task-definition/${family}:${revisions.length}`
        : undefined;
    }
    async register(definition: TaskDefinitionLayout) {
      const revisions = [...(this.families.get(definition.family) ?? []), definition];
      this.families.set(definition.family, revisions);
      return `arn:aws:ecs:eu-west-1:123456789012:task-definition/${definition.family}:${revisions.length}`;
    }
  }

  it('registers a layout once and reuses it for every later job with the same model and size', async () => {
    const registry = new Registry();
    const model = created('mine', '123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/mine:2');
    const layout = createdModelLayout(model, resolveCapacity('ml.m5.large', []), launch);
    const first = await ensureTaskDefinition(registry, layout);
    const second = await ensureTaskDefinition(
      registry,
      createdModelLayout({ ...model, CreationTime: 'later' }, resolveCapacity('ml.m5.xlarge', []), launch),
    );
    expect(second).toBe(first);
    expect([...registry.families.keys()]).toEqual([layout.family]);
    expect(registry.families.get(layout.family)).toHaveLength(1);
  });

  it('asks ECS for the family and treats an unknown or inactive one as not registered', async () => {
    const answers: Array<() => unknown> = [
      () => {
        throw Object.assign(new Error('Unable to describe task definition.'), { name: 'ClientException' });
      },
      () => ({ taskDefinition: { taskDefinitionArn: 'arn:td/f:1', status: 'INACTIVE' } }),
      () => ({ taskDefinition: { taskDefinitionArn: 'arn:td/f:2', status: 'ACTIVE' } }),
    ];
    const sent: unknown[] = [];
    const ecs = new EcsTaskDefinitions({
      send: async (command) => {
        sent.push(command);
        return answers.shift()!();
      },
    });
    expect(await ecs.find('f')).toBeUndefined();
    expect(await ecs.find('f')).toBeUndefined();
    expect(await ecs.find('f')).toBe('arn:td/f:2');
    expect(sent.every((c) => c instanceof DescribeTaskDefinitionCommand)).toBe(true);
  });
});
