import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolve } from './definition';
import { type Cfn, exampleProps, type Synthesized, synthesize } from './synth';

/** IAM's quota on the inline policies of one role, all together (whitespace not counted). */
const ROLE_INLINE_POLICIES_MAX_CHARS = 10_240;

let synth: Synthesized;
beforeAll(() => {
  synth = synthesize(exampleProps());
});
afterAll(() => synth?.dispose());

const resourcesOf = (s: Synthesized, type: string): Array<[string, Cfn]> =>
  Object.entries(s.json.Resources).filter(([, r]) => r.Type === type);
const list = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

/** Every inline policy document attached to the role whose logical id starts with `prefix`, resolved. */
function policiesOfRole(s: Synthesized, prefix: string): Cfn[] {
  const [roleId] = resourcesOf(s, 'AWS::IAM::Role').find(([id]) => id.startsWith(prefix)) ?? [];
  expect(roleId, `role ${prefix}`).toBeDefined();
  return resourcesOf(s, 'AWS::IAM::Policy')
    .filter(([, p]) => p.Properties.Roles.some((r: Cfn) => r.Ref === roleId))
    .map(([, p]) => resolve(p.Properties.PolicyDocument, s.json));
}

describe('cdk-nag acknowledgements', () => {
  it('name the exact wildcards granted: any other wildcard on a role, Resource::* included, is a violation', () => {
    const extra = synthesize(exampleProps(), {
      before: (construct) => {
        construct.modelTasks.taskRole.addToPrincipalPolicy(
          new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: ['arn:aws:s3:::elsewhere/*'] }),
        );
        construct.lifecycle.functions.plan.role.addToPrincipalPolicy(
          new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: ['*'] }),
        );
      },
    });
    try {
      const findings = extra.violations.map((v) => `${v.rule} ${v.resources.join(' ')}`).join('\n');
      expect(findings).toMatch(
        /AwsSolutions-IAM5\[Resource::arn:aws:s3:::elsewhere\/\*\] .*Models\/TaskRole/,
      );
      expect(findings).toMatch(/AwsSolutions-IAM5\[Resource::\*\] .*Stages\/Plan\/Role/);
    } finally {
      extra.dispose();
    }
    // Without them, the deployment has no unacknowledged finding.
    expect(synth.violations).toEqual([]);
  });
});

describe('least privilege', () => {
  it("lets container instances write logs only to the deployment's task log group", () => {
    const [taskLogs] = resourcesOf(synth, 'AWS::Logs::LogGroup').find(([id]) =>
      id.startsWith('BatchTransformTaskLogs'),
    )!;
    const instanceRoles = resourcesOf(synth, 'AWS::IAM::Role').filter(([id]) =>
      id.startsWith('BatchTransformComputeInstanceRole'),
    );
    expect(instanceRoles).toHaveLength(3);
    for (const [id] of instanceRoles) {
      const writes = policiesOfRole(synth, id)
        .flatMap((d) => d.Statement)
        .filter((st: Cfn) => list(st.Action).some((a: string) => a.startsWith('logs:')));
      expect(writes.flatMap((st: Cfn) => list(st.Action)).sort(), id).toEqual([
        'logs:CreateLogStream',
        'logs:PutLogEvents',
      ]);
      for (const st of writes)
        expect(st.Resource, id).toEqual(String(resolve({ 'Fn::GetAtt': [taskLogs, 'Arn'] }, synth.json)));
    }
  });

  it("restricts the VPC's default security group to no rules at all", () => {
    const [vpcId] = resourcesOf(synth, 'AWS::EC2::VPC')[0]!;
    const restrict = resourcesOf(synth, 'Custom::VpcRestrictDefaultSG');
    expect(restrict).toHaveLength(1);
    expect(restrict[0]![1].Properties.DefaultSecurityGroupId).toEqual({
      'Fn::GetAtt': [vpcId, 'DefaultSecurityGroup'],
    });
  });

  it("logs every execution event without its data, so a job's Environment never reaches the log group", () => {
    const [, machine] = resourcesOf(synth, 'AWS::StepFunctions::StateMachine')[0]!;
    expect(machine.Properties.LoggingConfiguration).toMatchObject({
      Level: 'ALL',
      IncludeExecutionData: false,
    });
  });

  it("keeps each role's inline policies within IAM's 10,240 characters with 60 models on Fargate and an EC2 type", () => {
    const models = Object.fromEntries(
      Array.from({ length: 60 }, (_, i) => [
        `model-number-${i}`,
        {
          image: ecs.ContainerImage.fromRegistry(`public.ecr.aws/example/model-${i}:1.0`),
          modelDataUrl: `s3://model-artifacts-bucket/models/model-number-${i}/model.tar.gz`,
        },
      ]),
    );
    const many = synthesize(exampleProps({ models, ec2InstanceTypes: ['ml.g5.xlarge'], schedules: {} }), {
      nag: false,
    });
    try {
      expect(resourcesOf(many, 'AWS::ECS::TaskDefinition')).toHaveLength(120);
      for (const [id] of resourcesOf(many, 'AWS::IAM::Role')) {
        const size = policiesOfRole(many, id).reduce((n, d) => n + JSON.stringify(d).length, 0);
        expect(size, id).toBeLessThan(ROLE_INLINE_POLICIES_MAX_CHARS);
      }
      // RunTask is two resources whatever the number of task definitions: the declared families and
      // the created models' families.
      const run = policiesOfRole(many, 'BatchTransformLifecycleStateMachineRole')
        .flatMap((d) => d.Statement)
        .filter((st: Cfn) => list(st.Action).includes('ecs:RunTask'))
        .flatMap((st: Cfn) => list(st.Resource));
      expect(run).toHaveLength(2);
    } finally {
      many.dispose();
    }
  }, 120_000);
});

describe('customer-managed KMS keys', () => {
  const keyArn = (name: string) => `arn:aws:kms:eu-west-1:123456789012:key/${name}`;

  it('lets each role use the keys of the imported buckets and model artifacts it reads or writes, and the keys jobs name for outputs', () => {
    const imported = synthesize(
      (stack) => {
        const key = (name: string) => kms.Key.fromKeyArn(stack, `Key-${name}`, keyArn(name));
        const bucket = (name: string, encryptionKey?: kms.IKey) =>
          s3.Bucket.fromBucketAttributes(stack, `Bucket-${name}`, {
            bucketName: name,
            ...(encryptionKey ? { encryptionKey } : {}),
          });
        return exampleProps({
          models: {
            iris: {
              image: ecs.ContainerImage.fromRegistry('public.ecr.aws/example/iris-model:1.0'),
              modelDataUrl: 's3://model-artifacts-bucket/iris/model.tar.gz',
              modelDataKey: key('models'),
            },
          },
          ec2InstanceTypes: [],
          schedules: {},
          // The key as the imported bucket knows it, and as the location names it.
          inputLocations: [{ bucket: bucket('features', key('inputs')), prefix: 'daily/' }],
          outputLocations: [{ bucket: bucket('scores'), prefix: 'out/', encryptionKey: key('outputs') }],
          outputKmsKeys: [key('job-output')],
        });
      },
      { nag: false },
    );
    try {
      /** KMS actions each key gets in the role's policies. */
      const kmsOf = (rolePrefix: string) => {
        const found: Record<string, string[]> = {};
        for (const doc of policiesOfRole(imported, rolePrefix))
          for (const st of doc.Statement)
            for (const r of list(st.Resource))
              if (String(r).includes(':kms:')) {
                const name = String(r).slice(String(r).lastIndexOf('/') + 1);
                found[name] = [...new Set([...(found[name] ?? []), ...list(st.Action as string)])].sort();
              }
        return found;
      };
      const read = ['kms:Decrypt'];
      const write = ['kms:Decrypt', 'kms:GenerateDataKey'];
      expect(kmsOf('BatchTransformModelsTaskRole')).toEqual({
        models: read,
        inputs: read,
        outputs: write,
        'job-output': write,
      });
      expect(kmsOf('BatchTransformLifecycleStagesPlanRole')).toEqual({ inputs: read });
      // Assemble, and FinalizeFailure which assembles too: shard outputs in, .out objects out.
      for (const stage of ['Assemble', 'Finalize'])
        expect(kmsOf(`BatchTransformLifecycleStages${stage}Role`), stage).toEqual({
          outputs: write,
          'job-output': write,
        });
      expect(kmsOf('BatchTransformLifecycleStagesValidateRole')).toEqual({});
    } finally {
      imported.dispose();
    }
  });
});
