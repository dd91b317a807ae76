import { CloudFormationServiceException } from '@aws-sdk/client-cloudformation';
import { SFNServiceException } from '@aws-sdk/client-sfn';
import type { CommandSender } from '../../src/client/aws';

/**
 * The one fake of the suite: stands in for an SDK v3 client (SFNClient, CloudFormationClient) at its
 * `send(command)`. It records every command (name without "Command", and its input) and answers with
 * SDK-shaped responses given per command name: one response, a sequence (the last one repeats), or a
 * function of the input. A response `{ $error: { name, message } }` is thrown as the SDK's service
 * exception of that name.
 */
export type FakeResponse = Record<string, unknown> | { $error: { name: string; message: string } };
export type FakeHandler =
  | FakeResponse
  | FakeResponse[]
  | ((input: CommandInput, call: number) => FakeResponse);

/** A command's input as the tests read it: SDK-shaped, checked field by field. */
// biome-ignore lint/suspicious/noExplicitAny: the inputs of many different commands, asserted by the tests.
export type CommandInput = Record<string, any>;

export interface RecordedCall {
  readonly command: string;
  readonly input: CommandInput;
}

export class FakeAwsClient implements CommandSender {
  readonly calls: RecordedCall[] = [];
  readonly #handlers: Record<string, FakeHandler>;
  readonly #service: 'sfn' | 'cloudformation';
  readonly #onCall: ((call: RecordedCall) => void) | undefined;

  constructor(
    service: 'sfn' | 'cloudformation',
    handlers: Record<string, FakeHandler>,
    onCall?: (call: RecordedCall) => void,
  ) {
    this.#service = service;
    this.#handlers = handlers;
    this.#onCall = onCall;
  }

  async send(command: { input: unknown; constructor: { name: string } }): Promise<unknown> {
    const name = command.constructor.name.replace(/Command$/, '');
    const call = { command: name, input: structuredClone(command.input) as CommandInput };
    const n = this.calls.filter((c) => c.command === name).length;
    this.calls.push(call);
    this.#onCall?.(call);
    const handler = this.#handlers[name];
    if (handler === undefined) throw new Error(`the fake ${this.#service} client has no answer for ${name}`);
    const response =
      typeof handler === 'function'
        ? handler(command.input as CommandInput, n)
        : Array.isArray(handler)
          ? handler[Math.min(n, handler.length - 1)]!
          : handler;
    if ('$error' in response) throw this.#exception(response.$error as { name: string; message: string });
    return structuredClone(response);
  }

  /** The inputs of every call of one command, in order. */
  inputsOf(command: string): CommandInput[] {
    return this.calls.filter((c) => c.command === command).map((c) => c.input);
  }

  #exception(e: { name: string; message: string }): Error {
    const init = { name: e.name, $fault: 'client' as const, message: e.message, $metadata: {} };
    return this.#service === 'sfn' ? new SFNServiceException(init) : new CloudFormationServiceException(init);
  }
}

export const REGION = 'eu-west-1';
export const ACCOUNT = '123456789012';
export const STATE_MACHINE_ARN = `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:BatchTransform-Lifecycle-abc123`;
export const executionArn = (name: string) =>
  `arn:aws:states:${REGION}:${ACCOUNT}:execution:BatchTransform-Lifecycle-abc123:${name}`;

/** DescribeStacks' answer for a deployed stack (the outputs of lib/stack.ts). */
export function stackWithOutputs(stackName = 'BatchTransform', stateMachineArn = STATE_MACHINE_ARN) {
  return {
    Stacks: [
      {
        StackName: stackName,
        StackStatus: 'CREATE_COMPLETE',
        CreationTime: new Date('2030-01-01T00:00:00Z'),
        Outputs: [
          { OutputKey: 'StateMachineArn', OutputValue: stateMachineArn },
          { OutputKey: 'DataBucket', OutputValue: 'batchtransform-data-1' },
          { OutputKey: 'WorkRoot', OutputValue: 's3://batchtransform-work-1/jobs/' },
          { OutputKey: 'Dashboard', OutputValue: 'BatchTransform' },
        ],
      },
    ],
  };
}

/** GetExecutionHistory's answer once Validate has run: its TaskStateExited output carries the JobRef. */
export function historyWithValidatedJob(jobName: string, workUri: string) {
  return {
    events: [
      { id: 1, type: 'ExecutionStarted', timestamp: new Date('2030-01-31T10:00:00Z') },
      {
        id: 2,
        type: 'TaskStateEntered',
        timestamp: new Date('2030-01-31T10:00:00Z'),
        stateEnteredEventDetails: { name: 'Validate' },
      },
      {
        id: 6,
        type: 'TaskStateExited',
        timestamp: new Date('2030-01-31T10:00:01Z'),
        stateExitedEventDetails: {
          name: 'Validate',
          output: JSON.stringify({
            job: { jobName, jobUri: `${workUri}job.json`, workUri, outputUri: 's3://out/x/' },
            launch: {},
          }),
        },
      },
    ],
  };
}
