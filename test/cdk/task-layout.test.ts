import * as ecs from 'aws-cdk-lib/aws-ecs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CreatedModel,
  type DeploymentConfig,
  taskDefinitionFamily,
} from '../../src/contract/deployment';
import type { TaskDefinitionLayout } from '../../src/deploy/task-layout';
import { resolveCapacity } from '../../src/job/instances';
import { createdModelLayout } from '../../src/lifecycle/created-models';
import type { BatchTransformProps } from '../../lib/batch-transform';
import { type CfnTemplate, resolve } from './definition';
import { type Cfn, type Synthesized, synthesize } from './synth';

/**
 * The task definition the construct synthesizes for a declared model and the one Validate registers
 * at run time for the same model made with CreateModel come from one builder: for every size, the
 * two are equal but for the family's name (the run-time one is named after the layout's hash).
 */

const EC2_TYPES = ['ml.g5.xlarge', 'ml.inf2.xlarge'];
const MODELS = {
  withArtifacts: {
    image: 'registry.example/with-artifacts:3',
    modelDataUrl: 's3://artifacts-bucket/models/model.tar.gz',
    environment: { THRESHOLD: '0.5', MODE: 'fast' },
  },
  imageOnly: { image: 'registry.example/image-only:1' },
} as const;

const props: BatchTransformProps = {
  models: Object.fromEntries(
    Object.entries(MODELS).map(([name, m]) => [
      name,
      { ...m, image: ecs.ContainerImage.fromRegistry(m.image) },
    ]),
  ),
  ec2InstanceTypes: EC2_TYPES,
  sidecarImage: ecs.ContainerImage.fromRegistry('registry.example/sidecar:7'),
};

describe('one task layout for declared and created models', () => {
  let synth: Synthesized;
  let config: DeploymentConfig;

  beforeAll(() => {
    synth = synthesize(props, { nag: false });
    const validate = Object.values<Cfn>(synth.json.Resources).find(
      (r) => r.Type === 'AWS::Lambda::Function' && r.Properties.Environment?.Variables?.DEPLOYMENT,
    );
    config = JSON.parse(resolve(validate.Properties.Environment.Variables.DEPLOYMENT, synth.json) as string);
  }, 120_000);
  afterAll(() => synth?.dispose());

  const cases = Object.keys(MODELS).flatMap((model) =>
    ['ml.m5.large', ...EC2_TYPES].map((instanceType) => [model, instanceType] as const),
  );

  it.each(cases)('%s on %s: what Validate registers is what the stack synthesized', (name, instanceType) => {
    const declared = MODELS[name as keyof typeof MODELS];
    const capacity = resolveCapacity(instanceType, EC2_TYPES);
    const family = taskDefinitionFamily(
      config.launch.taskDefinitionFamilyPrefix,
      name,
      capacity.kind === 'ec2' ? capacity.instanceType : undefined,
    );
    const synthesized = synthesizedDefinition(synth.json, family);

    const created: CreatedModel = {
      ModelName: name,
      Image: declared.image,
      ...('modelDataUrl' in declared ? { ModelDataUrl: declared.modelDataUrl } : {}),
      ...('environment' in declared ? { Environment: declared.environment } : {}),
      ModelArn: `arn:aws:sagemaker:us-east-1:123456789012:model/${name}`,
      CreationTime: new Date().toISOString(),
      request: {},
    };
    const registered = createdModelLayout(created, capacity, config.launch.createdModels!);

    expect(registered.family).toMatch(
      new RegExp(`^${config.launch.createdModels!.familyPrefix}[0-9a-f]{20}$`),
    );
    const { Family: _synthesizedFamily, ...synthesizedRest } = synthesized;
    const { Family: _registeredFamily, ...registeredRest } = cloudFormationOf(registered);
    expect(registeredRest).toEqual(synthesizedRest);
  });

  it('names equal layouts alike and different layouts apart (task definitions are reused)', () => {
    const launch = config.launch.createdModels!;
    const model: CreatedModel = {
      ModelName: 'm',
      Image: 'registry.example/m:1',
      ModelArn: 'arn:aws:sagemaker:us-east-1:123456789012:model/m',
      CreationTime: '2026-12-03T00:00:00.000Z',
      request: {},
    };
    const fargate = resolveCapacity('ml.m5.large', EC2_TYPES);
    const again = { ...model, CreationTime: '2026-12-04T00:00:00.000Z', request: { Tags: [] } };
    expect(createdModelLayout(again, fargate, launch).family).toBe(
      createdModelLayout(model, fargate, launch).family,
    );
    // A bigger Fargate type registers the same definition (RunTask overrides the size).
    expect(createdModelLayout(model, resolveCapacity('ml.m5.4xlarge', EC2_TYPES), launch).family).toBe(
      createdModelLayout(model, fargate, launch).family,
    );
    const families = new Set(
      [
        createdModelLayout(model, fargate, launch),
        createdModelLayout({ ...model, Image: 'registry.example/m:2' }, fargate, launch),
        createdModelLayout({ ...model, Environment: { A: '1' } }, fargate, launch),
        createdModelLayout(model, resolveCapacity('ml.g5.xlarge', EC2_TYPES), launch),
      ].map((l) => l.family),
    );
    expect(families.size).toBe(4);
  });

  it('lets Validate register only families under the prefix and pass only the task roles; the state machine runs them on its cluster', () => {
    const prefix = config.launch.createdModels!.familyPrefix;
    const families = `arn:aws:ecs:us-east-1:123456789012:task-definition/${prefix}*`;
    const validate = statementsOfRole(synth.json, 'BatchTransformLifecycleStagesValidate');
    expect(validate).toContainEqual(
      expect.objectContaining({ Action: 'ecs:RegisterTaskDefinition', Resource: families }),
    );
    const pass = validate.find((st) => st.Action === 'iam:PassRole');
    expect(pass.Resource.map(String).sort()).toEqual(
      [
        config.launch.createdModels!.platform.executionRoleArn,
        config.launch.createdModels!.platform.taskRoleArn,
      ].sort(),
    );
    expect(pass.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } });
    const run = statementsOfRole(synth.json, 'BatchTransformLifecycleStateMachineRole').find(
      (st) => st.Action === 'ecs:RunTask' && [st.Resource].flat().includes(families),
    );
    expect(run?.Condition.ArnEquals['ecs:cluster']).toBeDefined();
    // The default image rule: pulls from the account's ECR repositories, in any region.
    const pulls = statementsOfRole(synth.json, 'BatchTransformModelsExecutionRole').find(
      (st) =>
        Array.isArray(st.Action) &&
        st.Action.includes('ecr:BatchGetImage') &&
        st.Resource === 'arn:aws:ecr:*:123456789012:repository/*',
    );
    expect(pulls).toBeDefined();
  });
});

/** The resolved statements of every policy attached to the role whose logical id starts with `prefix`. */
function statementsOfRole(template: CfnTemplate & Cfn, prefix: string): Cfn[] {
  const roleId = Object.keys(template.Resources).find(
    (id) => id.startsWith(prefix) && template.Resources[id]!.Type === 'AWS::IAM::Role',
  );
  if (!roleId) throw new Error(`no role ${prefix}`);
  return Object.values<Cfn>(template.Resources)
    .filter((r) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((x: Cfn) => x.Ref === roleId))
    .flatMap((r) => resolve(r.Properties.PolicyDocument.Statement, template) as Cfn[]);
}

/** The resolved properties of the template's task definition with this (placeholder) ARN. */
/** The synthesized task definition of a family (jobs launch by family). */
function synthesizedDefinition(template: CfnTemplate & Cfn, family: string): Record<string, unknown> {
  const resource = Object.values<Cfn>(template.Resources).find(
    (r) => r.Type === 'AWS::ECS::TaskDefinition' && r.Properties?.Family === family,
  );
  if (!resource) throw new Error(`no task definition of family ${family} in the template`);
  return resolve(resource.Properties as Cfn, template) as Record<string, unknown>;
}

/**
 * The layout in CloudFormation's spelling, as the construct's L1 renders it: every member name
 * capitalised, except the keys of the log driver's options (the driver's own names).
 */
function cloudFormationOf(layout: TaskDefinitionLayout): Record<string, unknown> {
  const recase = (value: unknown, parent?: string): unknown => {
    if (Array.isArray(value)) return value.map((v) => recase(v));
    if (value === null || typeof value !== 'object' || parent === 'options') return value;
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k[0]!.toUpperCase() + k.slice(1), recase(v, k)]),
    );
  };
  return recase(layout) as Record<string, unknown>;
}
