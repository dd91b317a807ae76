import { SFNServiceException } from '@aws-sdk/client-sfn';
import type { CommandSender } from '../../src/client/aws';
import type { Asl } from '../cdk/definition';
import { type ItemReaderStandIn, type LocalHandler, runLocally } from '../cdk/local-execution';

/**
 * TEST ONLY. A Step Functions client (the SDK's `send(command)`) whose executions are the synthesized
 * definition run by aws-local-stepfunctions with the given state handlers: StartExecution starts one
 * in the background, DescribeExecution and ListExecutions report it as Step Functions would. Enough
 * of the service for the typed client's submit, describe and list; StopExecution is not offered.
 */
export class LocalStepFunctions implements CommandSender {
  readonly #executions = new Map<string, Execution>();
  readonly #running: Promise<void>[] = [];

  constructor(
    readonly stateMachineArn: string,
    readonly definition: Asl,
    readonly handlers: Readonly<Record<string, LocalHandler>>,
    /** What the Distributed Map's ItemReader would read from S3. */
    readonly readItems?: ItemReaderStandIn,
  ) {}

  async send(command: { input: Record<string, unknown>; constructor: { name: string } }): Promise<unknown> {
    const input = command.input;
    switch (command.constructor.name) {
      case 'StartExecutionCommand':
        return this.#start(String(input.name), String(input.input));
      case 'DescribeExecutionCommand': {
        const found = [...this.#executions.values()].find((e) => e.executionArn === input.executionArn);
        if (!found) throw error('ExecutionDoesNotExist', `Execution Does Not Exist: '${input.executionArn}'`);
        return { ...found };
      }
      case 'ListExecutionsCommand': {
        const all = [...this.#executions.values()]
          .filter((e) => !input.statusFilter || e.status === input.statusFilter)
          .sort((a, b) => b.startDate.getTime() - a.startDate.getTime());
        return { executions: all.map(({ input: _input, output: _output, ...item }) => item) };
      }
      case 'GetExecutionHistoryCommand':
        return { events: [] };
      default:
        throw new Error(`the local Step Functions client does not offer ${command.constructor.name}`);
    }
  }

  /** Waits for every execution started so far to end. */
  async settled(): Promise<void> {
    await Promise.all(this.#running);
  }

  #start(name: string, input: string) {
    if (this.#executions.has(name))
      throw error('ExecutionAlreadyExists', `Execution Already Exists: '${this.#arn(name)}'`);
    const execution: Execution = {
      executionArn: this.#arn(name),
      stateMachineArn: this.stateMachineArn,
      name,
      status: 'RUNNING',
      startDate: new Date(),
      input,
    };
    this.#executions.set(name, execution);
    this.#running.push(
      runLocally(this.definition, JSON.parse(input), this.handlers, {
        executionName: name,
        readItems: this.readItems,
      }).then((outcome) => {
        execution.stopDate = new Date();
        if (outcome.status === 'SUCCEEDED') {
          execution.status = 'SUCCEEDED';
          execution.output = JSON.stringify(outcome.output);
        } else {
          execution.status = 'FAILED';
          execution.error = outcome.error;
          execution.cause = outcome.cause;
        }
      }),
    );
    return { executionArn: execution.executionArn, startDate: execution.startDate };
  }

  #arn(name: string): string {
    return `${this.stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
  }
}

interface Execution {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED';
  startDate: Date;
  stopDate?: Date;
  input: string;
  output?: string;
  error?: string;
  cause?: string;
}

function error(name: string, message: string): Error {
  return new SFNServiceException({ name, $fault: 'client', message, $metadata: {} });
}
