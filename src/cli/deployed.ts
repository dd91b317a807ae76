import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Command, InvalidArgumentError } from 'commander';
import type { AwsClients } from '../client/aws';
import { DEFAULT_STACK_NAME, STATE_MACHINE_ARN_ENV } from '../client/defaults';
import type { JobDescription } from '../client/describe';
import type { Transformer } from '../client/transformer';
import { CliError, EXIT, earlier } from './io';

/** The options every verb on a deployed stack takes. */
export interface DeploymentOptions {
  stackName?: string;
  stateMachineArn?: string;
  region?: string;
  profile?: string;
}

/**
 * TEST ONLY: names a module whose `awsClients()` returns the Step Functions and CloudFormation
 * clients to use instead of the SDK's, so the spawned CLI can be tested without AWS. Not for users.
 */
export const TEST_AWS_CLIENTS_ENV = 'BATCH_TRANSFORM_TEST_AWS_CLIENTS';

export function addDeploymentOptions(command: Command): Command {
  return command
    .option(
      '--stack-name <name>',
      `the CloudFormation stack whose outputs name the state machine (default: ${DEFAULT_STACK_NAME})`,
    )
    .option(
      '--state-machine-arn <arn>',
      `the state machine itself, instead of the stack's StateMachineArn output (or set ${STATE_MACHINE_ARN_ENV})`,
    )
    .option('--region <region>', 'AWS region of the stack (default: AWS_REGION or the profile)')
    .option('--profile <profile>', 'a profile of the AWS config files (default: AWS_PROFILE)');
}

/** Help text shared by the deployed verbs. */
export const DEPLOYMENT_HELP = `
The state machine is --state-machine-arn, else the StateMachineArn output of --stack-name, else
${STATE_MACHINE_ARN_ENV}, else the output of the stack ${DEFAULT_STACK_NAME}.`;

/** Runs `fn` with a Transformer for the deployment, turning the client's errors into clear CLI errors. */
export async function withTransformer<T>(
  opts: DeploymentOptions,
  fn: (transformer: Transformer) => Promise<T>,
): Promise<T> {
  // Loaded here, not at start: the AWS SDK is most of the client, and only these verbs need it.
  const [{ Transformer }, { BatchTransformError }] = await Promise.all([
    import('../client/transformer'),
    import('../client/aws'),
  ]);
  const transformer = new Transformer({
    ...(opts.stateMachineArn ? { stateMachineArn: opts.stateMachineArn } : {}),
    ...(opts.stackName ? { stackName: opts.stackName } : {}),
    ...(opts.region ? { region: opts.region } : {}),
    ...(opts.profile ? { profile: opts.profile } : {}),
    ...(await testClients()),
  });
  try {
    return await fn(transformer);
  } catch (e) {
    if (e instanceof BatchTransformError) throw new CliError(e.message, EXIT.invalid);
    throw e;
  } finally {
    transformer.close();
  }
}

/** TEST ONLY: the fake AWS clients named by BATCH_TRANSFORM_TEST_AWS_CLIENTS, if any. */
export async function testClients(): Promise<{ clients?: AwsClients }> {
  const modulePath = process.env[TEST_AWS_CLIENTS_ENV];
  if (!modulePath) return {};
  const mod = (await import(pathToFileURL(resolve(modulePath)).href)) as { awsClients(): AwsClients };
  return { clients: mod.awsClients() };
}

/** The exit code a finished job gives `wait` and `submit --wait`. */
export function exitCodeOf(d: JobDescription): number {
  return d.TransformJobStatus === 'Completed' ? EXIT.ok : EXIT.failed;
}

const MB = 1048576;

/** A description for people: status, reason, counters, locations, times. */
export function formatDescription(d: JobDescription): string {
  const p = d.Progress;
  const res = d.TransformResources;
  const lines = [`Transform job ${d.TransformJobName}: ${d.TransformJobStatus}`];
  if (d.FailureReason) lines.push(`  reason:    ${d.FailureReason}`);
  if (p) {
    const of = p.totalBytes ? ` of ${(p.totalBytes / MB).toFixed(2)} MB` : '';
    lines.push(
      `  objects:   ${p.objectsCompleted} completed, ${p.objectsFailed} failed, ${p.skippedObjects} skipped,${earlier(p)} of ${p.objectsTotal}`,
      `  records:   ${p.records} (${p.failedRecords} isolated as errors); ${(p.bytesIn / MB).toFixed(2)} MB in${of}, ${(p.bytesOut / MB).toFixed(2)} MB out`,
    );
  } else if (d.ProgressUnavailable) {
    lines.push(`  progress:  unavailable (${d.ProgressUnavailable})`);
  }
  if (d.ModelName) {
    const on = res ? ` on ${res.InstanceCount} × ${res.InstanceType}` : '';
    lines.push(`  model:     ${d.ModelName}${on}`);
  }
  const input = d.TransformInput?.DataSource?.S3DataSource?.S3Uri;
  if (input) lines.push(`  input:     ${input}`);
  if (d.TransformOutput?.S3OutputPath) lines.push(`  outputs:   ${d.TransformOutput.S3OutputPath}`);
  lines.push(`  created:   ${d.CreationTime}`);
  if (d.TransformStartTime) lines.push(`  started:   ${d.TransformStartTime}`);
  if (d.TransformEndTime) lines.push(`  ended:     ${d.TransformEndTime}`);
  for (const f of (d.FailedObjects ?? []).slice(0, 5)) {
    lines.push(
      `  failed:    ${f.uri}: ${f.reason}${f.offset !== undefined ? ` (record at byte ${f.offset})` : ''}`,
    );
  }
  if ((d.FailedObjects?.length ?? 0) > 5)
    lines.push(`  failed:    … ${d.FailedObjects!.length - 5} more (--json)`);
  lines.push(`  execution: ${d.ExecutionArn}`);
  return lines.join('\n');
}

/** Parses a number of seconds given on the command line. */
export function parseSeconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError('expected a number of seconds ≥ 0.');
  return n;
}
