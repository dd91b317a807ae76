import { App, Stack } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { describe, expect, it } from 'vitest';
import { BatchTransform, type BatchTransformProps } from '../../lib/batch-transform';
import { exampleProps } from './synth';

/**
 * Bad props fail while the construct is built, before any synthesis, with what to change. The app has
 * none of cdk.json's feature flags: the construct must not depend on an embedding app's flags.
 * (Lambda bundling, which also runs at construction, is skipped.)
 */
function build(props: BatchTransformProps): () => void {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  return () => new BatchTransform(new Stack(app, 'Test'), 'BatchTransform', props);
}
const image = ecs.ContainerImage.fromRegistry('example/model:1');
const schedule = (request: Record<string, unknown>, expression = 'rate(1 day)') => ({
  schedules: { daily: { expression, request } },
});
const goodRequest = exampleProps().schedules!.nightly!.request;

describe('BatchTransform props', () => {
  it.each<[string, Partial<BatchTransformProps>, RegExp]>([
    [
      'a Fargate-sized type among the EC2 types',
      { ec2InstanceTypes: ['ml.m5.xlarge'] },
      /"ml.m5.xlarge" fits Fargate and always runs there; remove it/,
    ],
    [
      'an instance type not in the catalog',
      { ec2InstanceTypes: ['ml.g99.huge'] },
      /"ml.g99.huge" is not an instance type of the catalog/,
    ],
    ['no models', { models: {} }, /models is empty/],
    [
      'a model name SageMaker would refuse',
      { models: { iris_v2: { image } } },
      /models\["iris_v2"\]: a ModelName is 1–63 letters, digits and hyphens/,
    ],
    [
      'ModelDataUrl outside S3',
      { models: { iris: { image, modelDataUrl: 'https://example.com/m.tar.gz' } } },
      /an https:\/\/ location must be an S3 URL .*got host "example.com"/,
    ],
    [
      'an environment variable name',
      { models: { iris: { image, environment: { 'BAD-NAME': '1' } } } },
      /"BAD-NAME" is not a valid variable name/,
    ],
    [
      'a maximum instance count of zero',
      { maxInstanceCount: 0 },
      /maxInstanceCount must be a whole number ≥ 1/,
    ],
    [
      'work locations that never expire',
      { workExpiryDays: 0 },
      /workExpiryDays must be a whole number of days ≥ 1/,
    ],
    [
      'a schedule expression Scheduler would refuse',
      schedule(goodRequest, '0 2 * * *'),
      /is not a Scheduler expression; use cron\(0 2 \* \* \? \*\)/,
    ],
    [
      'a schedule whose job names a model the deployment lacks',
      schedule({ ...goodRequest, ModelName: 'resnet' }),
      /schedules\["daily"\]\.request: .*ModelName/s,
    ],
    [
      'a schedule whose job needs EC2 capacity that is not enabled',
      schedule({ ...goodRequest, TransformResources: { InstanceType: 'ml.p3.2xlarge', InstanceCount: 1 } }),
      /schedules\["daily"\]\.request: .*ml\.p3\.2xlarge/s,
    ],
  ])('rejects %s', (_label, overrides, message) => {
    expect(build(exampleProps(overrides))).toThrow(message);
  });

  it('rejects a deployment whose description outgrows the Lambda environment, and says what to change', () => {
    const models = Object.fromEntries(
      Array.from({ length: 30 }, (_, i) => [
        `model-${i}`,
        { image, environment: { SETTING: 'x'.repeat(100) } },
      ]),
    );
    expect(build(exampleProps({ models, schedules: {} }))).toThrow(
      /over the 3800 bytes a Lambda environment can hold.*Split the models over two deployments/s,
    );
  });

  it('accepts the example deployment without any feature flag set', () => {
    expect(build(exampleProps())).not.toThrow();
  });
});
