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

/**
 * What a Distributed Map's ItemReader reads (S3 GetObject of a JSON array): the test's stand-in
 * for S3, called with the reader's Parameters after their paths are resolved (`{ Bucket, Key }`).
 */
export type ItemReaderStandIn = (parameters: {
  Bucket: string;
  Key: string;
}) => Promise<unknown[]> | unknown[];

/** Suffix of the Task state that stands in for a Map's ItemReader (see withItemReaderStandIn). */
export const ITEM_READER_SUFFIX = '·ItemReader';

export async function runLocally(
  definition: Asl,
  input: unknown,
  handlers: Readonly<Record<string, LocalHandler>>,
  opts: { executionName: string; readItems?: ItemReaderStandIn },
): Promise<LocalOutcome> {
  const readers: Record<string, LocalHandler> = {};
  const runnable = withInlineMapCap(
    withItemReaderStandIn(structuredClone(definition), (name) => {
      readers[name] = async (parameters) => {
        if (!opts.readItems) throw new Error(`${name}: this test gave runLocally no readItems stand-in`);
        return opts.readItems(parameters);
      };
    }),
  );
  handlers = { ...handlers, ...readers };
  const machine = new StateMachine(runnable, {
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

/**
 * aws-local-stepfunctions ignores a Distributed Map's ItemReader (it would iterate over the Map's
 * input instead). This substitutes that one piece: a Task state `<Map>·ItemReader` placed before
 * the Map calls the test's reader with the ItemReader's Parameters (paths resolved by the library,
 * as Step Functions resolves them) and puts the items at `$.<Map>·items`, where the Map's ItemsPath
 * now points. Everything else about the Map (ItemSelector, MaxConcurrencyPath, the item processor
 * with its Retry, the Catch) runs as synthesized. Step Functions would not leave the items in the
 * state; here they stay in the Map's output beside the rest.
 */
export function withItemReaderStandIn(definition: Asl, onReader: (stateName: string) => void): Asl {
  const states = definition.States as Record<string, Asl>;
  for (const [name, state] of Object.entries(states)) {
    if (state.Type !== 'Map' || !state.ItemReader) continue;
    const reader = `${name}${ITEM_READER_SUFFIX}`;
    const itemsField = `${name}·items`;
    states[reader] = {
      Type: 'Task',
      Resource: state.ItemReader.Resource,
      Parameters: state.ItemReader.Parameters,
      ResultPath: `$.${itemsField}`,
      Next: name,
    };
    delete state.ItemReader;
    state.ItemsPath = `$.${itemsField}`;
    // Every transition into the Map now goes through its reader.
    const retarget = (s: Asl) => {
      if (s === states[reader]) return;
      if (s.Next === name) s.Next = reader;
      if (s.Default === name) s.Default = reader;
      for (const c of [...(s.Choices ?? []), ...(s.Catch ?? [])]) if (c.Next === name) c.Next = reader;
    };
    Object.values(states).forEach(retarget);
    if (definition.StartAt === name) definition.StartAt = reader;
    onReader(reader);
  }
  return definition;
}

/**
 * Step Functions runs an inline Map's iterations at most 40 at once, whatever MaxConcurrency says
 * (Step Functions quotas); aws-local-stepfunctions honours MaxConcurrencyPath as given. This caps
 * inline Maps at 40, so a test of concurrency sees what Step Functions would run. (A path's value
 * below 40 is then not honoured locally: tests of concurrency use wide jobs.)
 */
export const INLINE_MAP_CONCURRENCY = 40;
export function withInlineMapCap(definition: Asl): Asl {
  for (const state of Object.values<Asl>(definition.States)) {
    if (state.Type !== 'Map' || state.ItemProcessor?.ProcessorConfig?.Mode === 'DISTRIBUTED') continue;
    if (state.MaxConcurrencyPath || !state.MaxConcurrency || state.MaxConcurrency > INLINE_MAP_CONCURRENCY) {
      delete state.MaxConcurrencyPath;
      state.MaxConcurrency = INLINE_MAP_CONCURRENCY;
    }
  }
  return definition;
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
  return events.flatMap((e) => {
    const name = e.type === 'StateEntered' ? (e as { state: { name: string } }).state.name : undefined;
    return name !== undefined && !name.endsWith(ITEM_READER_SUFFIX) ? [name] : [];
  });
}

export { STATE_NAMES };
