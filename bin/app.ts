import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BatchTransformStack } from '../lib/stack';
import { DEFAULT_STACK_NAME } from '../src/client/defaults';

/**
 * The CDK app (`npx cdk synth|deploy`, run through `npx tsx bin/app.ts` by cdk.json). The stack is
 * environment-agnostic, so synthesis needs no credentials; feature flags are in cdk.json.
 *
 * Context: `-c stackName=…` (default BatchTransform), `-c ec2InstanceTypes=ml.g5.xlarge,ml.p3.2xlarge`.
 */
const app = new App();
const list = (value: unknown): string[] | undefined =>
  typeof value === 'string' && value.trim() ? value.split(',').map((s) => s.trim()) : undefined;
const ec2InstanceTypes = list(app.node.tryGetContext('ec2InstanceTypes'));

new BatchTransformStack(app, String(app.node.tryGetContext('stackName') ?? DEFAULT_STACK_NAME), {
  description:
    'SageMaker-compatible batch transform: Step Functions lifecycle, ECS tasks (Fargate and EC2 from zero)',
  ...(ec2InstanceTypes ? { ec2InstanceTypes } : {}),
});

// cdk-nag's AwsSolutions checks run on every synth; each acknowledged finding carries its reason in lib/.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
