/**
 * The synthesized lifecycle run locally with many partitions: how many RunPartition tasks run at
 * once, and how many events Step Functions' execution histories would hold. Shared by the state
 * machine test (test/cdk/flow.test.ts) and `npm run scale`.
 *
 * aws-local-stepfunctions runs the definition's Map states but not a Distributed Map's ItemReader:
 * that piece is substituted (withItemReaderStandIn), everything else runs as synthesized. It also
 * keeps one event log for the whole run where Step Functions keeps one history per execution, so
 * the history figures come from a model of Step Functions' history events (historyOf below).
 */
import type { Asl } from './definition';
import { asLambda, type EventLog, type LocalHandler, runLocally, STATE_NAMES as S } from './local-execution';

/** Step Functions' cap on the events in one execution's history (Step Functions quotas). */
export const HISTORY_EVENT_LIMIT = 25_000;

export interface ScaleRunOptions {
  readonly partitions: number;
  /** Failed attempts of each partition's task before it succeeds (each one retried by the Map's Retry). */
  readonly failuresPerPartition?: number;
  /** RunPartition holds until this many are in flight (or `holdMs` passes), so concurrency shows. */
  readonly holdUntilInFlight?: number;
  readonly holdMs?: number;
}

export interface ScaleRunResult {
  readonly status: string;
  readonly runTaskCalls: number;
  readonly maxConcurrentPartitions: number;
  readonly history: HistoryFigures;
}

export async function runPartitionsAtScale(definition: Asl, o: ScaleRunOptions): Promise<ScaleRunResult> {
  const items = Array.from({ length: o.partitions }, (_, index) => ({ index }));
  const failuresLeft = new Map(items.map(({ index }) => [index, o.failuresPerPartition ?? 0]));
  let inFlight = 0;
  let maxInFlight = 0;
  let calls = 0;
  const waiters = new Set<() => void>();
  const job = {
    jobName: 'wide',
    jobUri: 's3://w/jobs/wide/job.json',
    workUri: 's3://w/jobs/wide/',
    outputUri: 's3://d/out/',
    instanceCount: o.partitions,
    tags: [],
  };
  const launch = {
    taskDefinition: 'arn:td/iris-fargate:1',
    capacityProviderStrategy: [{ CapacityProvider: 'FARGATE', Weight: 1, Base: 0 }],
    networkConfiguration: {
      AwsvpcConfiguration: { Subnets: ['s-1'], SecurityGroups: ['sg-1'], AssignPublicIp: 'ENABLED' },
    },
    cpu: '2048',
    memory: '8192',
    modelEnvironment: [{ Name: 'SAGEMAKER_BATCH', Value: 'true' }],
  };
  const runPartition: LocalHandler = async (input) => {
    calls++;
    const index = Number(input.Overrides.ContainerOverrides[0].Environment[2].Value);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    for (const wake of waiters) wake();
    if (o.holdUntilInFlight && inFlight < o.holdUntilInFlight) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          if (inFlight >= o.holdUntilInFlight!) done();
        };
        const timer = setTimeout(() => done(), o.holdMs ?? 5_000);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(wake);
          resolve();
        };
        waiters.add(wake);
      });
    }
    inFlight--;
    const left = failuresLeft.get(index)!;
    if (left > 0) {
      failuresLeft.set(index, left - 1);
      const e = new Error('{"StoppedReason":"Essential container in task exited"}');
      e.name = 'States.TaskFailed';
      throw e;
    }
    return { TaskArn: `arn:task/${index}` };
  };
  const handlers: Record<string, LocalHandler> = {
    [S.validate]: () => ({ job, launch }),
    [S.plan]: () => ({
      planUri: 's3://w/jobs/wide/plan.json',
      partitions: items,
      partitionItemsKey: 'jobs/wide/partition-items.json',
      objectCount: o.partitions,
    }),
    [S.runPartition]: runPartition,
    [S.assemble]: () => ({ assembledObjects: 0 }),
    [S.finalize]: () => ({ TransformJobName: 'wide', TransformJobStatus: 'Completed' }),
    [S.cleanup]: () => ({ abortedUploads: 0, deletedScratchObjects: 0, stoppedTasks: 0 }),
    [S.finalizeFailure]: () => ({ TransformJobStatus: 'Failed', FailureReason: 'failed' }),
    [S.cleanupAfterFailure]: () => ({ abortedUploads: 0, deletedScratchObjects: 0, stoppedTasks: 0 }),
  };
  const wrapped = Object.fromEntries(Object.entries(handlers).map(([k, h]) => [k, asLambda(h)]));
  const outcome = await runLocally(
    definition,
    { TransformJobName: 'wide' },
    wrapped,
    // The ItemReader stand-in: the items file the Plan stage writes, as S3 would return it.
    { executionName: 'wide', readItems: () => items },
  );
  return {
    status: outcome.status,
    runTaskCalls: calls,
    maxConcurrentPartitions: maxInFlight,
    history: historyOf(definition, outcome.events),
  };
}

export interface HistoryFigures {
  /** Events in the parent execution's history. */
  readonly parent: number;
  /** Events in the largest child execution's history (one per Distributed Map item). */
  readonly largestChild: number;
  readonly children: number;
  /** What the parent would hold if the Map were inline (every iteration's events in it). */
  readonly parentIfInline: number;
}

/**
 * Step Functions' history events for the local run, by the event types its history records
 * (GetExecutionHistory's HistoryEvent types):
 * - an execution: ExecutionStarted and ExecutionSucceeded/Failed (2);
 * - a Task state: TaskStateEntered and TaskStateExited (2), and per attempt TaskScheduled,
 *   TaskStarted, TaskSucceeded/TaskFailed (3) plus TaskSubmitted for a `.sync` integration (4);
 * - a Distributed Map in its parent: MapStateEntered, MapStateStarted, MapRunStarted,
 *   MapRunSucceeded/Failed, MapStateSucceeded/Failed, MapStateExited (6), whatever the item count;
 *   each item runs as a child execution with a history of its own;
 * - an inline Map: the same 4 map-state events, plus MapIterationStarted and
 *   MapIterationSucceeded/Failed per iteration (2) and the iteration's state events, all in the parent;
 * - a Parallel state: ParallelStateEntered, ParallelStateStarted, ParallelStateSucceeded/Failed,
 *   ParallelStateExited (4), and per retry another ParallelStateStarted and ParallelStateFailed (2);
 *   its branches' states count as states of the execution it runs in;
 * - a Fail state: FailStateEntered (1), the execution or branch then fails;
 * - any other state: its Entered and Exited events (2).
 */
export function historyOf(definition: Asl, events: readonly EventLog[]): HistoryFigures {
  const top = definition.States as Record<string, Asl>;
  const inner: Record<string, Asl> = {};
  // A Map's item processor, with the states of any Parallel branches inside it.
  const addInner = (states: Record<string, Asl>) => {
    Object.assign(inner, states);
    for (const state of Object.values(states)) for (const b of state.Branches ?? []) addInner(b.States);
  };
  for (const state of Object.values(top)) {
    if (state.ItemProcessor) addInner(state.ItemProcessor.States);
  }
  const sync = (state: Asl) => typeof state.Resource === 'string' && state.Resource.endsWith('.sync');
  let parent = 2;
  const child = new Map<number, number>();
  let mapItems = 0;
  let mapStates = 0;
  for (const e of events as ReadonlyArray<EventLog & { state?: { name: string }; index?: number }>) {
    const name = e.state?.name;
    if (e.type === 'MapIterationStarted') mapItems++;
    if (!name || name.endsWith('·ItemReader')) continue; // the stand-in is part of the Map run
    const inItem = e.index !== undefined && name in inner;
    const state = inItem ? inner[name] : top[name];
    if (!state) continue;
    let n = 0;
    if (e.type === 'StateEntered') {
      n = state.Type === 'Map' ? 6 : state.Type === 'Parallel' ? 4 : state.Type === 'Fail' ? 1 : 2;
      if (state.Type === 'Map') mapStates++;
      if (state.Type === 'Task') n += sync(state) ? 4 : 3;
    } else if (e.type === 'StateRetried' && state.Type === 'Task') {
      n = sync(state) ? 4 : 3;
    } else if (e.type === 'StateRetried' && state.Type === 'Parallel') {
      n = 2;
    }
    if (inItem) child.set(e.index!, (child.get(e.index!) ?? 2) + n);
    else parent += n;
  }
  const childEvents = [...child.values()];
  // Inline: the map-state events (4 instead of 6), two per iteration, each iteration's events less
  // the two a child execution adds for itself.
  const parentIfInline = parent - 2 * mapStates + 2 * mapItems + childEvents.reduce((s, c) => s + c - 2, 0);
  return {
    parent,
    largestChild: Math.max(0, ...childEvents),
    children: childEvents.length,
    parentIfInline,
  };
}
