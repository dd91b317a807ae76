import { Match } from 'aws-cdk-lib/assertions';
import validateAsl from 'asl-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATE_NAMES } from '../../src/contract/state-names';
import { launchSpecFor } from '../../lambdas/shared/deployment';
import type { DeploymentConfig, LaunchSpec } from '../../src/contract/deployment';
import type { JobRef } from '../../src/contract/state';
import { resolve, stateMachineDefinition } from './definition';
import { type Cfn, exampleProps, type Synthesized, synthesize } from './synth';

let synth: Synthesized;
beforeAll(() => {
  synth = synthesize(exampleProps());
});
afterAll(() => synth?.dispose());

const resourcesOf = (type: string): Array<[string, Cfn]> =>
  Object.entries(synth.json.Resources).filter(([, r]) => r.Type === type);

/** The task definition of a model for a capacity (`fargate` or an EC2 type such as `g5xlarge`). */
function taskDefinition(model: string, capacity: string): Cfn {
  const found = resourcesOf('AWS::ECS::TaskDefinition').filter(([id]) =>
    id.startsWith(`BatchTransformModels${model}${capacity}`),
  );
  expect(found, `task definition of ${model} on ${capacity}`).toHaveLength(1);
  return found[0]![1].Properties;
}
const container = (td: Cfn, name: string) => td.ContainerDefinitions.find((c: Cfn) => c.Name === name);

/** Every statement of the inline policies attached to the role whose logical id starts with `prefix`. */
function statementsOfRole(prefix: string): Cfn[] {
  const [roleId] = resourcesOf('AWS::IAM::Role').find(([id]) => id.startsWith(prefix)) ?? [];
  expect(roleId, `role ${prefix}`).toBeDefined();
  return resourcesOf('AWS::IAM::Policy')
    .filter(([, p]) => p.Properties.Roles.some((r: Cfn) => r.Ref === roleId))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
}
const list = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

describe('storage', () => {
  it('gives every bucket a lifecycle rule that aborts incomplete multipart uploads after 1 day', () => {
    const buckets = resourcesOf('AWS::S3::Bucket');
    expect(buckets.length).toBe(3); // access logs, work, data
    for (const [, bucket] of buckets) {
      expect(bucket.Properties.LifecycleConfiguration.Rules).toContainEqual(
        expect.objectContaining({
          AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
          Status: 'Enabled',
        }),
      );
    }
  });

  it('expires work locations after 30 days, never the job-name reservations, and keeps data objects', () => {
    const [, work] = resourcesOf('AWS::S3::Bucket').find(([id]) => id.includes('StorageWork'))!;
    const expiring = work.Properties.LifecycleConfiguration.Rules.filter((r: Cfn) => r.ExpirationInDays);
    expect(expiring).toEqual([
      expect.objectContaining({ Id: 'expire-work-locations', ExpirationInDays: 30, Prefix: 'jobs/' }),
    ]);
    const [, data] = resourcesOf('AWS::S3::Bucket').find(([id]) => id.includes('StorageData'))!;
    expect(data.Properties.LifecycleConfiguration.Rules.some((r: Cfn) => r.ExpirationInDays)).toBe(false);
  });

  it('blocks public access, encrypts and refuses plain HTTP on every bucket', () => {
    for (const [id, bucket] of resourcesOf('AWS::S3::Bucket')) {
      expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      expect(bucket.Properties.BucketEncryption.ServerSideEncryptionConfiguration).toHaveLength(1);
      synth.template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: id },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
    }
  });
});

describe('compute', () => {
  it('associates FARGATE and one Auto Scaling capacity provider per enabled EC2 type with the cluster', () => {
    const providers = resourcesOf('AWS::ECS::CapacityProvider');
    expect(
      providers.map(([id]) => id.replace(/^BatchTransformComputeCapacity|[A-F0-9]{8}$/g, '')).sort(),
    ).toEqual(['c59xlarge', 'g5xlarge', 'inf2xlarge']);
    synth.template.hasResourceProperties('AWS::ECS::ClusterCapacityProviderAssociations', {
      CapacityProviders: Match.arrayWith(['FARGATE', ...providers.map(([id]) => ({ Ref: id }))]),
    });
    for (const [, provider] of providers) {
      expect(provider.Properties.AutoScalingGroupProvider).toMatchObject({
        ManagedScaling: { Status: 'ENABLED', TargetCapacity: 100 },
        ManagedTerminationProtection: 'ENABLED',
      });
    }
  });

  it('starts every Auto Scaling group at zero instances, from a launch template', () => {
    const groups = resourcesOf('AWS::AutoScaling::AutoScalingGroup');
    expect(groups).toHaveLength(3);
    for (const [, group] of groups) {
      expect(group.Properties.MinSize).toBe('0');
      expect(group.Properties.MaxSize).toBe('100');
      expect(group.Properties.LaunchTemplate.LaunchTemplateId).toEqual({
        Ref: expect.stringContaining('LaunchTemplate'),
      });
      expect(group.Properties.LaunchConfigurationName).toBeUndefined();
    }
    expect(resourcesOf('AWS::AutoScaling::LaunchConfiguration')).toHaveLength(0);
  });

  it('launches GPU types from the ECS GPU-optimized AMI and Neuron types from the Neuron AMI, with encrypted volumes and IMDSv2', () => {
    const amiOf = (type: string) => {
      const [, lt] = resourcesOf('AWS::EC2::LaunchTemplate').find(
        ([, r]) => r.Properties.LaunchTemplateData.InstanceType === type,
      )!;
      const data = lt.Properties.LaunchTemplateData;
      expect(data.MetadataOptions.HttpTokens).toBe('required');
      expect(data.BlockDeviceMappings[0].Ebs).toMatchObject({ Encrypted: true, VolumeType: 'gp3' });
      const parameter = synth.json.Parameters[data.ImageId.Ref];
      return parameter.Default as string;
    };
    expect(amiOf('g5.xlarge')).toMatch(/amazon-linux-2023\/gpu\//);
    expect(amiOf('inf2.xlarge')).toMatch(/amazon-linux-2023\/neuron\//);
    expect(amiOf('c5.9xlarge')).not.toMatch(/gpu|neuron/);
  });

  it('creates a VPC with public subnets only: no NAT gateway, an S3 gateway endpoint', () => {
    expect(resourcesOf('AWS::EC2::NatGateway')).toHaveLength(0);
    expect(resourcesOf('AWS::EC2::Subnet')).toHaveLength(2);
    synth.template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      ServiceName: Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith(['.s3'])]) }),
    });
  });
});

describe('task definitions', () => {
  it('registers one Fargate and one task definition per enabled EC2 type for every model', () => {
    expect(resourcesOf('AWS::ECS::TaskDefinition')).toHaveLength(2 * 4);
    expect(taskDefinition('iris', 'fargate').RequiresCompatibilities).toEqual(['FARGATE']);
    expect(taskDefinition('iris', 'g5xlarge').RequiresCompatibilities).toEqual(['EC2']);
    for (const [, td] of resourcesOf('AWS::ECS::TaskDefinition'))
      expect(td.Properties.NetworkMode).toBe('awsvpc');
  });

  it('declares the GPUs of a GPU type on the model container, and none on Fargate', () => {
    expect(container(taskDefinition('iris', 'g5xlarge'), 'model').ResourceRequirements).toEqual([
      { Type: 'GPU', Value: '1' },
    ]);
    expect(container(taskDefinition('iris', 'fargate'), 'model').ResourceRequirements).toBeUndefined();
    expect(container(taskDefinition('iris', 'c59xlarge'), 'model').ResourceRequirements).toBeUndefined();
  });

  it('maps the Neuron devices of a Neuron type into the model container', () => {
    const devices = container(taskDefinition('iris', 'inf2xlarge'), 'model').LinuxParameters.Devices;
    expect(devices).toEqual([
      { HostPath: '/dev/neuron0', ContainerPath: '/dev/neuron0', Permissions: ['read', 'write'] },
    ]);
  });

  it('sizes EC2 task definitions from the instance catalog', () => {
    const td = taskDefinition('iris', 'c59xlarge');
    expect(td.Cpu).toBe(String(36 * 1024));
    expect(Number(td.Memory)).toBeLessThan(72 * 1024);
  });

  it('extracts ModelDataUrl in an init container the model waits for, and runs the model with serve on 8080', () => {
    const td = taskDefinition('iris', 'fargate');
    const fetch = container(td, 'fetch-model');
    expect(fetch).toMatchObject({ Essential: false, Command: ['fetch-model'], ReadonlyRootFilesystem: true });
    expect(fetch.Environment).toContainEqual({
      Name: 'MODEL_DATA_URL',
      Value: 's3://model-artifacts-bucket/iris/model.tar.gz',
    });
    const model = container(td, 'model');
    expect(model).toMatchObject({
      Command: ['serve'],
      PortMappings: [{ ContainerPort: 8080, Protocol: 'tcp' }],
      DependsOn: [{ ContainerName: 'fetch-model', Condition: 'SUCCESS' }],
      Environment: [{ Name: 'MODEL_SERVER_LOG_REQUESTS', Value: 'true' }],
    });
    expect(model.MountPoints).toContainEqual({
      SourceVolume: 'model',
      ContainerPath: '/opt/ml/model',
      ReadOnly: false,
    });
  });

  it('gives a model without artifacts no init container and no volume over /opt/ml/model', () => {
    const td = taskDefinition('sentiment', 'fargate');
    expect(container(td, 'fetch-model')).toBeUndefined();
    expect(container(td, 'model').MountPoints ?? []).toEqual([]);
  });

  it('runs the sidecar as the essential container with an init process, a read-only root and a stop timeout', () => {
    for (const [, td] of resourcesOf('AWS::ECS::TaskDefinition')) {
      const sidecar = container(td.Properties, 'sidecar');
      expect(sidecar).toMatchObject({
        Essential: true,
        ReadonlyRootFilesystem: true,
        StopTimeout: 60,
        LinuxParameters: { InitProcessEnabled: true },
      });
      expect(container(td.Properties, 'model').Essential).toBe(false);
    }
  });
});

describe('IAM', () => {
  it('lets the task role read the input locations and model artifacts and write outputs and work locations, nothing more', () => {
    const statements = statementsOfRole('BatchTransformModelsTaskRole');
    const actions = new Set(statements.flatMap((s) => list(s.Action)));
    expect([...actions].sort()).toEqual([
      's3:AbortMultipartUpload',
      's3:GetObject',
      's3:ListBucket',
      's3:PutObject',
    ]);
    for (const s of statements) {
      expect(list(s.Action).some((a: string) => a.includes('*'))).toBe(false);
      expect(list(s.Resource)).not.toContain('*');
    }
    const flat = (r: Cfn) => JSON.stringify(r);
    const writable = statements
      .filter((s) => list(s.Action).includes('s3:PutObject'))
      .flatMap((s) => list(s.Resource).map(flat));
    expect(writable).toHaveLength(2);
    expect(writable.some((r) => r.includes('StorageData') && r.includes('/output/*'))).toBe(true);
    expect(writable.some((r) => r.includes('StorageWork') && r.includes('/jobs/*'))).toBe(true);
    const readable = statements
      .filter((s) => list(s.Action).includes('s3:GetObject'))
      .flatMap((s) => list(s.Resource).map(flat));
    expect(readable.some((r) => r.includes('/input/*'))).toBe(true);
    expect(readable.some((r) => r.includes('model-artifacts-bucket/iris/model.tar.gz'))).toBe(true);
    expect(readable.some((r) => r.includes('/output/'))).toBe(false);
  });

  it('lets the Finalize function write under the output locations, where DataCaptureConfig manifests go', () => {
    const [, finalize] = resourcesOf('AWS::Lambda::Function').find(
      ([, f]) => f.Properties.Description === 'Batch transform: write the job summary and status',
    )!;
    const roleId = finalize.Properties.Role['Fn::GetAtt'][0] as string;
    const statements = resourcesOf('AWS::IAM::Policy')
      .filter(([, p]) => p.Properties.Roles.some((r: Cfn) => r.Ref === roleId))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
    const writable = statements
      .filter((s) => list(s.Action).includes('s3:PutObject'))
      .flatMap((s) => list(s.Resource).map((r) => JSON.stringify(r)));
    expect(writable.some((r) => r.includes('StorageData') && r.includes('/output/*'))).toBe(true);
    // The Plan function is told the same locations, to refuse a destination Finalize could not write.
    const [, plan] = resourcesOf('AWS::Lambda::Function').find(
      ([, f]) => f.Properties.Description === 'Batch transform: plan the partitions of a job',
    )!;
    expect(JSON.stringify(plan.Properties.Environment.Variables.OUTPUT_ROOTS)).toMatch(
      /StorageData.*\/output\//,
    );
  });

  it('grants no role s3:* or any action on every resource of S3', () => {
    for (const [, policy] of resourcesOf('AWS::IAM::Policy')) {
      for (const s of policy.Properties.PolicyDocument.Statement) {
        const actions = list(s.Action) as string[];
        expect(actions).not.toContain('s3:*');
        if (list(s.Resource).includes('*')) expect(actions.filter((a) => a.startsWith('s3:'))).toEqual([]);
      }
    }
  });

  it('lets the state machine run only the deployment task definitions, on its cluster, passing only the task roles', () => {
    const statements = statementsOfRole('BatchTransformLifecycleStateMachineRole');
    const run = statements.find((s) => list(s.Action).includes('ecs:RunTask'));
    // Every revision of every declared family in one resource (8 task definitions here), and the
    // families Validate registers for created models, which begin with their own prefix.
    const resources = statements
      .filter((s) => list(s.Action).includes('ecs:RunTask'))
      .flatMap((s) => list(s.Resource))
      .map((r) => String(resolve(r, synth.json)));
    const prefix = synth.construct.modelTasks.familyPrefix;
    expect(resources).toHaveLength(2);
    expect(resources).toContain(`arn:aws:ecs:us-east-1:123456789012:task-definition/${prefix}_*:*`);
    expect(resources).toContain(`arn:aws:ecs:us-east-1:123456789012:task-definition/${prefix}-created-*`);
    const families = resourcesOf('AWS::ECS::TaskDefinition').map(([, td]) => String(td.Properties.Family));
    expect(families).toHaveLength(8);
    for (const family of families) expect(family.startsWith(`${prefix}_`), family).toBe(true);
    expect(run.Condition.ArnEquals['ecs:cluster']).toBeDefined();
    const pass = statements.find((s) => list(s.Action).includes('iam:PassRole'));
    expect(list(pass.Resource)).toHaveLength(2);
    expect(pass.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } });
  });
});

describe('redeploys', () => {
  /** The Validate step's answer for a job of `iris` on `capacity`, with the deployment the stack gives it. */
  function validatedLaunch(capacity: JobRef['capacity']): LaunchSpec {
    const [, validate] = resourcesOf('AWS::Lambda::Function').find(([id]) =>
      id.startsWith('BatchTransformLifecycleStagesValidate'),
    )!;
    const config = JSON.parse(
      String(resolve(validate.Properties.Environment.Variables.DEPLOYMENT, synth.json)),
    ) as DeploymentConfig;
    const job = {
      jobName: 'job-1',
      modelName: 'iris',
      instanceType: 'ml.m5.large',
      capacity,
      modelEnvironment: [],
    } as unknown as JobRef;
    return launchSpecFor(job, config);
  }

  it.each([
    ['Fargate', { kind: 'fargate', cpu: 2048, memoryMiB: 8192 }, 'fargate'],
    [
      'an EC2 type',
      { kind: 'ec2', instanceType: 'g5.xlarge', cpu: 4096, memoryMiB: 14592, gpus: 1, neuronDevices: 0 },
      'g5xlarge',
    ],
  ] as const)(
    'has Validate store the task definition family on %s, which RunTask resolves to the latest ACTIVE revision, never a revision ARN',
    (_label, capacity, id) => {
      const launch = validatedLaunch(capacity as JobRef['capacity']);
      // A revision ARN (`…:task-definition/family:3`) would be refused once a redeploy deregistered it.
      expect(launch.taskDefinition).not.toMatch(/^arn:|:\d+$/);
      expect(launch.taskDefinition).toBe(taskDefinition('iris', id).Family);
    },
  );
});

describe('schedules', () => {
  it('starts the state machine on the cron expression in its time zone with the template and the scheduled time', () => {
    const [[, schedule]] = resourcesOf('AWS::Scheduler::Schedule') as [[string, Cfn]];
    expect(schedule.Properties).toMatchObject({
      ScheduleExpression: 'cron(0 2 * * ? *)',
      ScheduleExpressionTimezone: 'Europe/Berlin',
      State: 'ENABLED',
      FlexibleTimeWindow: { Mode: 'OFF' },
    });
    const [smId] = resourcesOf('AWS::StepFunctions::StateMachine')[0]!;
    expect(schedule.Properties.Target.Arn).toEqual({ Ref: smId });
    const input = JSON.parse(schedule.Properties.Target.Input);
    expect(input).toMatchObject({
      scheduledTime: '<aws.scheduler.scheduled-time>',
      scheduleExecutionId: '<aws.scheduler.execution-id>',
      request: { TransformJobName: 'nightly-iris', ModelName: 'iris' },
    });
    expect(input.request.TransformInput.DataSource.S3DataSource.S3Uri).toBe(
      's3://data-bucket/input/{{ScheduledTime:yyyy/MM/dd}}/',
    );
  });
});

describe('observability', () => {
  it('alarms on any failed or timed-out execution of the state machine', () => {
    const [[, alarm]] = resourcesOf('AWS::CloudWatch::Alarm') as [[string, Cfn]];
    expect(alarm.Properties).toMatchObject({
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
    });
    const metrics = alarm.Properties.Metrics.filter((m: Cfn) => m.MetricStat).map(
      (m: Cfn) => m.MetricStat.Metric.MetricName,
    );
    expect(metrics.sort()).toEqual(['ExecutionsFailed', 'ExecutionsTimedOut']);
  });

  it('keeps every log group for a limited time', () => {
    const groups = resourcesOf('AWS::Logs::LogGroup');
    expect(groups.length).toBeGreaterThanOrEqual(7); // 5 stages, executions, tasks
    for (const [, g] of groups) expect(g.Properties.RetentionInDays).toBe(30);
  });

  it('cleans up after executions that end ABORTED, TIMED_OUT or FAILED', () => {
    const [, rule] = resourcesOf('AWS::Events::Rule')[0]!;
    expect(rule.Properties.EventPattern).toMatchObject({
      source: ['aws.states'],
      'detail-type': ['Step Functions Execution Status Change'],
      detail: { status: ['ABORTED', 'TIMED_OUT', 'FAILED'] },
    });
    expect(rule.Properties.Targets[0].Arn['Fn::GetAtt'][0]).toMatch(/Cleanup/);
    expect(rule.Properties.Targets[0].InputTransformer.InputTemplate).toContain('<detail-executionArn>');
  });
});

describe('cdk-nag', () => {
  it('leaves no unacknowledged AwsSolutions finding (or CloudFormation validation warning)', () => {
    expect(synth.violations).toEqual([]);
  });
});

describe('state machine definition', () => {
  const definition = () => stateMachineDefinition(synth.json);

  it('gives FinalizeFailure, which assembles what finished, the time and output access Assemble has', () => {
    const states = definition().States;
    /** The function a Lambda state invokes, and the statements of its role. */
    const invoked = (state: string) => {
      const id = /:function:([A-Za-z0-9]+)$/.exec(states[state].Resource)![1]!;
      const fn = synth.json.Resources[id]!.Properties as Cfn;
      const roleId = fn.Role['Fn::GetAtt'][0];
      const statements = resourcesOf('AWS::IAM::Policy')
        .filter(([, p]) => p.Properties.Roles.some((r: Cfn) => r.Ref === roleId))
        .flatMap(([, p]) => p.Properties.PolicyDocument.Statement);
      const writes = statements
        .filter((st) => list(st.Action).includes('s3:PutObject'))
        .flatMap((st) => list(st.Resource).map((r) => JSON.stringify(r)));
      return { timeout: fn.Timeout, writes };
    };
    const assemble = invoked(STATE_NAMES.assemble);
    const finalizeFailure = invoked(STATE_NAMES.finalizeFailure);
    expect(assemble.timeout).toBe(900);
    expect(finalizeFailure.timeout).toBe(assemble.timeout);
    for (const output of assemble.writes) expect(finalizeFailure.writes).toContain(output);
  });

  it('is valid Amazon States Language', () => {
    const result = validateAsl(structuredClone(definition()));
    expect(result.errorsText('\n')).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('runs validate, plan, the partitions, assemble, finalize and cleanup in order, and every failure through FinalizeFailure', () => {
    const states = definition().States;
    const s = STATE_NAMES;
    const next = (name: string) => states[name].Next;
    const catchTarget = (state: Cfn) => state.Catch?.map((c: Cfn) => [c.ErrorEquals, c.Next, c.ResultPath]);
    expect(definition().StartAt).toBe(s.validate);
    expect([s.validate, s.plan, s.runPartitions, s.assemble, s.finalize, s.cleanup].map(next)).toEqual([
      s.plan,
      s.runPartitions,
      s.assemble,
      s.finalize,
      s.cleanup,
      s.isCompleted,
    ]);
    for (const name of [s.validate, s.plan, s.runPartitions, s.assemble, s.finalize]) {
      expect(catchTarget(states[name]), name).toEqual([[['States.ALL'], s.finalizeFailure, '$.failure']]);
    }
    expect(catchTarget(states[s.cleanup])).toEqual([[['States.ALL'], s.isCompleted, '$.cleanupFailure']]);
    expect(states[s.isCompleted].Choices).toEqual([
      { Variable: '$.result.TransformJobStatus', StringEquals: 'Completed', Next: s.succeeded },
    ]);
    expect(states[s.isCompleted].Default).toBe(s.transformJobFailed);
    expect(states[s.succeeded]).toEqual({ Type: 'Succeed', OutputPath: '$.result' });
    expect(states[s.transformJobFailed]).toEqual({
      Type: 'Fail',
      Error: 'TransformJobFailed',
      CausePath: '$.result.FailureReason',
    });
    expect(next(s.finalizeFailure)).toBe(s.cleanupAfterFailure);
    expect(catchTarget(states[s.finalizeFailure])).toEqual([
      [['States.ALL'], s.reasonFromCause, '$.finalizeFailure'],
    ]);
    expect(next(s.reasonFromCause)).toBe(s.cleanupAfterFailure);
    expect(next(s.cleanupAfterFailure)).toBe(s.jobFailed);
    expect(catchTarget(states[s.cleanupAfterFailure])).toEqual([
      [['States.ALL'], s.jobFailed, '$.cleanupFailure'],
    ]);
    expect(states[s.jobFailed]).toEqual({
      Type: 'Fail',
      ErrorPath: '$.failure.Error',
      CausePath: '$.result.FailureReason',
    });
  });

  it('passes the execution name to Validate and keeps the state small between steps', () => {
    const states = definition().States;
    expect(states.Validate.Parameters).toEqual({ 'input.$': '$', 'executionName.$': '$$.Execution.Name' });
    expect(states.Validate.ResultPath).toBeUndefined(); // the result replaces the input
    expect(states.Plan.ResultPath).toBe('$.plan');
    expect(states.RunPartitions.ResultPath).toBeNull();
    expect(states.Finalize.ResultPath).toBe('$.result');
  });

  it('maps over the plan partitions, InstanceCount at a time, one ECS RunTask .sync per partition', () => {
    const map = definition().States.RunPartitions;
    expect(map).toMatchObject({
      Type: 'Map',
      ItemReader: { Parameters: { 'Key.$': '$.plan.partitionItemsKey' } },
      ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' } },
      MaxConcurrencyPath: '$.job.instanceCount',
      ItemSelector: {
        'index.$': '$$.Map.Item.Value.index',
        'job.$': '$.job',
        'launch.$': '$.launch',
        'planUri.$': '$.plan.planUri',
      },
    });
    const run = map.ItemProcessor.States.Partition.Branches[0].States.RunPartition;
    expect(run.Resource).toBe('arn:aws:states:::ecs:runTask.sync');
    expect(run.Parameters).toMatchObject({
      'TaskDefinition.$': '$.launch.taskDefinition',
      'CapacityProviderStrategy.$': '$.launch.capacityProviderStrategy',
      'NetworkConfiguration.$': '$.launch.networkConfiguration',
      'StartedBy.$': '$.job.jobName',
      // The request's Tags go on each task, with the task definition's (the deployment's) own.
      'Tags.$': '$.job.tags',
      PropagateTags: 'TASK_DEFINITION',
    });
    expect(run.Parameters.LaunchType).toBeUndefined();
    expect(run.Parameters.Overrides.ContainerOverrides).toEqual([
      {
        Name: 'sidecar',
        Environment: [
          { Name: 'JOB_URI', 'Value.$': '$.job.jobUri' },
          { Name: 'PLAN_URI', 'Value.$': '$.planUri' },
          { Name: 'PARTITION_INDEX', 'Value.$': "States.Format('{}', $.index)" },
        ],
      },
      { Name: 'model', 'Environment.$': '$.launch.modelEnvironment' },
    ]);
    expect(run.TimeoutSeconds).toBe(24 * 3600);
  });

  it('retries ECS API errors longer than failed or timed-out partitions, both with backoff and full jitter', () => {
    const partition = definition().States.RunPartitions.ItemProcessor.States.Partition;
    expect(partition.Branches[0].States.RunPartition.Retry).toEqual([
      expect.objectContaining({
        ErrorEquals: expect.arrayContaining(['ECS.AmazonECSException']),
        MaxAttempts: 6,
        JitterStrategy: 'FULL',
        BackoffRate: 2,
      }),
      // RunTask `failures` (capacity, quotas): minutes apart, not seconds.
      expect.objectContaining({
        ErrorEquals: ['AmazonECS.Unknown'],
        IntervalSeconds: 60,
        MaxAttempts: 6,
        MaxDelaySeconds: 600,
        JitterStrategy: 'FULL',
        BackoffRate: 2,
      }),
    ]);
    // A partition (its task, judged by the sidecar's exit code) is retried as a whole.
    expect(partition.Retry).toEqual([
      expect.objectContaining({
        ErrorEquals: ['States.TaskFailed', 'States.Timeout'],
        MaxAttempts: 2,
        JitterStrategy: 'FULL',
        BackoffRate: 2,
      }),
    ]);
  });
});
