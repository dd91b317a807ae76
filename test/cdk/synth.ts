import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BatchTransform, type BatchTransformProps } from '../../lib/batch-transform';
import { REPO_ROOT } from '../../lib/paths';
import type { CfnTemplate } from './definition';

/** The feature flags of cdk.json, so tests synthesize what `cdk synth` does. */
export function cdkJsonContext(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')).context;
}

/**
 * A value of a synthesized CloudFormation template: untyped JSON that the tests walk with property
 * access, so it is deliberately `any`.
 */
// biome-ignore lint/suspicious/noExplicitAny: CloudFormation template JSON, navigated by the assertions
export type Cfn = any;

export interface Synthesized {
  readonly stack: Stack;
  readonly construct: BatchTransform;
  readonly template: Template;
  readonly json: CfnTemplate & Record<string, Cfn>;
  /** cdk-nag's (and CloudFormation Validate's) violations that were not acknowledged. */
  readonly violations: ReadonlyArray<{
    plugin: string;
    rule: string;
    description: string;
    resources: string[];
  }>;
  /** The cloud assembly directory (removed by `dispose`). */
  readonly outdir: string;
  dispose(): void;
}

/**
 * Synthesizes one BatchTransform in its own stack, with cdk-nag's AwsSolutions checks registered as
 * bin/app.ts does (unless `nag: false`, for tests that only run the result). Lambda bundling is
 * skipped unless asked for (it is what makes synthesis slow); container images are only staged
 * either way.
 */
export function synthesize(
  /** The construct's props, or a function making them in the stack (to import buckets and keys there). */
  props: BatchTransformProps | ((stack: Stack) => BatchTransformProps),
  opts: {
    bundle?: boolean;
    nag?: boolean;
    /** Called with the construct before synthesis: how a test adds to a deployment. */
    before?: (construct: BatchTransform) => void;
  } = {},
): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'cdk-test-'));
  const app = new App({
    outdir,
    context: { ...cdkJsonContext(), ...(opts.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }) },
  });
  const stack = new Stack(app, 'Test');
  const construct = new BatchTransform(
    stack,
    'BatchTransform',
    typeof props === 'function' ? props(stack) : props,
  );
  opts.before?.(construct);
  if (opts.nag !== false) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  try {
    app.synth();
  } catch (e) {
    // Unacknowledged findings fail synthesis after the template and the report are written; the
    // cdk-nag test reports them from the file, the other tests still get the template.
    if (!/ValidationFailed|Validation failed/.test(String(e))) throw e;
  }
  const json = JSON.parse(readFileSync(join(outdir, `${stack.artifactId}.template.json`), 'utf8'));
  const reportFile = join(outdir, 'validation-report.json');
  const report = existsSync(reportFile) ? JSON.parse(readFileSync(reportFile, 'utf8')) : {};
  const violations = (report.pluginReports ?? []).flatMap((p: Cfn) =>
    (p.violations ?? []).map((v: Cfn) => ({
      plugin: p.pluginName,
      rule: v.ruleName,
      description: v.description,
      resources: (v.violatingConstructs ?? []).map((c: Cfn) => c.constructPath),
    })),
  );
  return {
    stack,
    construct,
    template: Template.fromJSON(json),
    json,
    violations,
    outdir,
    dispose: () => rmSync(outdir, { recursive: true, force: true }),
  };
}

/**
 * A deployment exercising every kind of capacity: two models (one with artifacts and environment,
 * one from a private ECR repository), a GPU type, a Neuron type, a CPU size Fargate cannot match
 * (36 vCPUs), and a schedule.
 */
export function exampleProps(overrides: Partial<BatchTransformProps> = {}): BatchTransformProps {
  return {
    models: {
      iris: {
        image: ecs.ContainerImage.fromRegistry('public.ecr.aws/example/iris-model:1.0'),
        modelDataUrl: 's3://model-artifacts-bucket/iris/model.tar.gz',
        environment: { MODEL_SERVER_LOG_REQUESTS: 'true' },
      },
      sentiment: { image: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/sentiment-model:2.1' },
    },
    ec2InstanceTypes: ['ml.g5.xlarge', 'ml.inf2.xlarge', 'ml.c5.9xlarge'],
    // As a team embedding the construct would: a published sidecar image (the repository-built one is
    // covered by the project stack's test).
    sidecarImage: ecs.ContainerImage.fromRegistry('public.ecr.aws/example/batch-transform-sidecar:1.0'),
    schedules: {
      nightly: {
        expression: 'cron(0 2 * * ? *)',
        timeZone: 'Europe/Berlin',
        request: {
          TransformJobName: 'nightly-iris',
          ModelName: 'iris',
          TransformInput: {
            DataSource: {
              S3DataSource: {
                S3DataType: 'S3Prefix',
                S3Uri: 's3://data-bucket/input/{{ScheduledTime:yyyy/MM/dd}}/',
              },
            },
            ContentType: 'text/csv',
            SplitType: 'Line',
          },
          TransformOutput: { S3OutputPath: 's3://data-bucket/output/{{ScheduledTime:yyyy/MM/dd}}/' },
          TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 2 },
        },
      },
    },
    ...overrides,
  };
}
