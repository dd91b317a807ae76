import { DescribeStacksCommand, type DescribeStacksCommandOutput } from '@aws-sdk/client-cloudformation';
import { awsErrorName, awsFailure, BatchTransformError, type CommandSender } from './aws';

import { DEFAULT_STACK_NAME, STATE_MACHINE_ARN_ENV } from './defaults';

/** The outputs `lib/stack.ts` declares; the client needs StateMachineArn, the rest is shown to people. */
export const STACK_OUTPUTS = {
  stateMachineArn: 'StateMachineArn',
  dataBucket: 'DataBucket',
  workRoot: 'WorkRoot',
  /** Where models made with CreateModel are kept (`batch-transform api` writes them there). */
  modelsRoot: 'ModelsRoot',
  /** The image patterns created models may use, as JSON. */
  createdModelImages: 'CreatedModelImages',
  dashboard: 'Dashboard',
} as const;

/** A deployed batch-transform stack, as far as the client needs it. */
export interface Deployment {
  readonly stateMachineArn: string;
  /** The state machine's region (from its ARN): every Step Functions call goes there. */
  readonly region: string;
  /** Where the ARN came from, so errors and `--help` can say it. */
  readonly source: 'option' | 'environment' | 'stack';
  readonly stackName?: string;
  /** Every output of the stack, when it was read. */
  readonly outputs?: Readonly<Record<string, string>>;
}

export interface DeploymentLookup {
  readonly stateMachineArn?: string;
  /** A stack named on purpose; without one, the environment variable and then DEFAULT_STACK_NAME. */
  readonly stackName?: string;
  readonly region?: string;
  readonly env?: NodeJS.ProcessEnv;
}

const STATE_MACHINE_ARN = /^arn:aws[a-z-]*:states:([a-z0-9-]+):(\d{12}):stateMachine:([A-Za-z0-9_-]{1,80})$/;

/**
 * Finds the state machine: `stateMachineArn`; else the StateMachineArn output of the stack named by
 * `stackName` when one is named; else the BATCH_TRANSFORM_STATE_MACHINE_ARN environment variable;
 * else the output of the default stack. A name given on purpose beats the environment.
 */
export async function resolveDeployment(
  lookup: DeploymentLookup,
  cloudFormation: () => CommandSender,
): Promise<Deployment> {
  const env = lookup.env ?? process.env;
  if (lookup.stateMachineArn) return fromArn(lookup.stateMachineArn, 'option');
  const fromEnv = env[STATE_MACHINE_ARN_ENV]?.trim();
  if (fromEnv && !lookup.stackName) return fromArn(fromEnv, 'environment');

  const stackName = lookup.stackName ?? DEFAULT_STACK_NAME;
  const where = lookup.region ? ` in ${lookup.region}` : '';
  const howElse = `deploy it (npx cdk deploy), name another stack with --stack-name, or give the state machine with --state-machine-arn or ${STATE_MACHINE_ARN_ENV}`;
  let out: DescribeStacksCommandOutput;
  try {
    out = await cloudFormation().send(new DescribeStacksCommand({ StackName: stackName }));
  } catch (e) {
    // CloudFormation answers an unknown stack with a ValidationError "Stack with id X does not exist".
    if (awsErrorName(e) === 'ValidationError' && /does not exist/i.test((e as Error).message)) {
      throw new BatchTransformError('NoDeployment', `no stack named "${stackName}"${where}; ${howElse}`, {
        cause: e,
      });
    }
    throw awsFailure(e, `reading the outputs of stack "${stackName}"`);
  }
  const stack = out.Stacks?.[0];
  if (!stack)
    throw new BatchTransformError('NoDeployment', `no stack named "${stackName}"${where}; ${howElse}`);
  const outputs: Record<string, string> = {};
  for (const o of stack.Outputs ?? []) if (o.OutputKey && o.OutputValue) outputs[o.OutputKey] = o.OutputValue;
  const arn = outputs[STACK_OUTPUTS.stateMachineArn];
  if (!arn) {
    throw new BatchTransformError(
      'NoDeployment',
      `stack "${stackName}" (${stack.StackStatus ?? 'status unknown'}) has no ${STACK_OUTPUTS.stateMachineArn} output: it is not a batch-transform stack, or its deployment has not finished; ${howElse}`,
    );
  }
  return { ...fromArn(arn, 'stack'), stackName, outputs };
}

function fromArn(arn: string, source: Deployment['source']): Deployment {
  const m = STATE_MACHINE_ARN.exec(arn);
  if (!m) {
    const from = source === 'environment' ? ` (from ${STATE_MACHINE_ARN_ENV})` : '';
    throw new BatchTransformError(
      'NoDeployment',
      `"${arn}"${from} is not a state machine ARN; expected arn:aws:states:<region>:<account>:stateMachine:<name>`,
    );
  }
  return { stateMachineArn: arn, region: m[1]!, source };
}

/** A standard workflow's execution ARN: the state machine's, with `execution` and the execution's name. */
export function executionArnOf(stateMachineArn: string, executionName: string): string {
  return `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${executionName}`;
}

/** The state machine's name, for messages. */
export function stateMachineNameOf(stateMachineArn: string): string {
  return stateMachineArn.slice(stateMachineArn.lastIndexOf(':') + 1);
}
