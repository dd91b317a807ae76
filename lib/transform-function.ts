import { join } from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { REPO_ROOT } from './paths';

/**
 * Node.js 24: the Lambda nodejs20.x runtime was deprecated on 2026-04-30 (creation is disabled from
 * 2027-02-01), and cdk-nag's AwsSolutions-L1 wants the latest runtime. The code needs nothing newer
 * than Node 20 (package.json engines), so the same handlers run in the local tests.
 */
const LAMBDA_RUNTIME = lambda.Runtime.NODEJS_24_X;
const BUNDLE_TARGET = 'node24';

export interface TransformFunctionProps {
  /** The handler module, relative to the repository root (e.g. `lambdas/plan/handler.ts`). */
  readonly entry: string;
  readonly description: string;
  /** Log retention of the function's log group. */
  readonly logRetention: logs.RetentionDays;
  readonly environment?: Readonly<Record<string, string>>;
  /** @default Duration.minutes(5) */
  readonly timeout?: Duration;
  /** @default 1024 (MiB; Lambda's CPU share grows with it, and the stages stream S3 objects) */
  readonly memorySize?: number;
}

/**
 * The house defaults for every Lambda of the project, in one place: Node.js 24 on arm64, a log
 * group with retention owned by the stack, source maps on, bundled with the local esbuild (never
 * Docker) as one ES module with the AWS SDK inside (the handlers are tested against the SDK version
 * in package-lock.json, not whichever the runtime ships), and a role of its own that may write its
 * logs and nothing else until a construct grants more.
 */
export class TransformFunction extends Construct {
  readonly function: nodejs.NodejsFunction;
  /** The handler module, relative to the repository root (what runs the function's code outside Lambda too). */
  readonly entry: string;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: TransformFunctionProps) {
    super(scope, id);
    this.entry = props.entry;
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // An own role instead of the AWSLambdaBasicExecutionRole managed policy: that policy may write
    // to every log group of the account; this one only to the function's.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `${props.description} (Lambda execution role)`,
    });
    this.logGroup.grantWrite(this.role);

    this.function = new nodejs.NodejsFunction(this, 'Function', {
      entry: join(REPO_ROOT, props.entry),
      projectRoot: REPO_ROOT,
      depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
      description: props.description,
      runtime: LAMBDA_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize ?? 1024,
      timeout: props.timeout ?? Duration.minutes(5),
      role: this.role,
      logGroup: this.logGroup,
      environment: { NODE_OPTIONS: '--enable-source-maps', ...props.environment },
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: BUNDLE_TARGET,
        mainFields: ['module', 'main'],
        sourceMap: true,
        minify: true,
        bundleAwsSDK: true,
        forceDockerBundling: false,
        // Bundled CommonJS dependencies may call require(); an ES module has none of its own.
        banner:
          "import { createRequire as __createRequire } from 'node:module';const require = __createRequire(import.meta.url);",
      },
    });
  }
}
