import { ExecutionError, StateMachine } from 'aws-local-stepfunctions';
import { STATE_NAMES } from '../../src/contract/state-names';
import type { Asl } from './definition';

/**
 * Runs the synthesized definition in aws-local-stepfunctions, with a local function per Task state
 * (bound by state name), retries without waiting, and the context Step Functions would give
 * (`$$.Execution.Name`). What a deployed Lambda or ECS task would do is the handler's business: wrap
 * stage handlers with `asLambda` so their errors reach Catch the way Lambda reports them.
 */

// aws-local-stepfunctions 3 uses Promise.withResolvers, which Node 20 lacks.
const promiseStatics = Promise as unknown as { withResolvers?: unknown };
promiseStatics.withResolvers ??= function withResolvers<T>() {
  let resolve!: (value: T) => void;
  let reject!: (reason?: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

/** One event of a local execution (the library does not export the type). */
export type EventLog =
  ReturnType<StateMachine['run']>['eventLogs'] extends AsyncGenerator<infer E> ? E : never;

// biome-ignore lint/suspicious/noExplicitAny: state payloads are untyped JSON
export type LocalHandler = (input: any) => Promise<unknown> | unknown;

export type LocalOutcome =
  | { readonly status: 'SUCCEEDED'; readonly output: unknown; readonly events: readonly EventLog[] }
  | {
      readonly status: 'FAILED';
      readonly error: string;
      readonly cause: string;
      readonly events: readonly EventLog[];
    };

export async function runLocally(
  definition: Asl,
  input: unknown,
  handlers: Readonly<Record<string, LocalHandler>>,
  opts: { executionName: string },
): Promise<LocalOutcome> {
  const machine = new StateMachine(structuredClone(definition), {
    validationOptions: { checkArn: false, checkPaths: false },
  });
  const retryableStates = [...collectStateNames(definition)];
  const execution = machine.run(input as never, {
    overrides: {
      taskResourceLocalHandlers: handlers as never,
      retryIntervalOverrides: Object.fromEntries(retryableStates.map((name) => [name, 0])),
    },
    context: {
      Execution: {
        Id: `arn:aws:states:us-east-1:123456789012:execution:local:${opts.executionName}`,
        Name: opts.executionName,
        Input: input as never,
        StartTime: new Date().toISOString(),
        RoleArn: 'arn:aws:iam::123456789012:role/local',
      },
    } as never,
  });
  const events: EventLog[] = [];
  const collecting = (async () => {
    for await (const event of execution.eventLogs) events.push(event);
  })();
  try {
    const output = await execution.result;
    await collecting;
    return { status: 'SUCCEEDED', output, events };
  } catch (e) {
    await collecting;
    if (!(e instanceof ExecutionError)) throw e;
    const failed = events.find((ev) => ev.type === 'ExecutionFailed') as
      | { Error: string; Cause: unknown }
      | undefined;
    return {
      status: 'FAILED',
      error: failed?.Error ?? e.name,
      cause: String(failed?.Cause ?? e.message),
      events,
    };
  }
}

/** The names of every state, including those inside Map and Parallel states. */
function* collectStateNames(definition: Asl): Generator<string> {
  for (const [name, state] of Object.entries<Asl>(definition.States ?? {})) {
    yield name;
    if (state.ItemProcessor) yield* collectStateNames(state.ItemProcessor);
    for (const branch of state.Branches ?? []) yield* collectStateNames(branch);
  }
}

/**
 * A handler as Lambda reports its failures to Step Functions: the error name becomes `Error`, and
 * `Cause` is the JSON Lambda writes (`errorType`, `errorMessage`, `trace`).
 */
export function asLambda(handler: LocalHandler): LocalHandler {
  return async (input) => {
    try {
      return await handler(input);
    } catch (e) {
      const err = e as Error;
      const failure = new Error(
        JSON.stringify({
          errorType: err.name,
          errorMessage: err.message,
          trace: (err.stack ?? '').split('\n'),
        }),
      );
      failure.name = err.name;
      throw failure;
    }
  };
}

/** The names of the states that entered, in order (Map iterations included). */
export function visited(events: readonly EventLog[]): string[] {
  return events.flatMap((e) =>
    e.type === 'StateEntered' ? [(e as { state: { name: string } }).state.name] : [],
  );
}

export { STATE_NAMES };
