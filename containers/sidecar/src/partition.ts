import {
  asksModel,
  type EffectiveParameters,
  ModelParametersError,
  negotiateParameters,
  PARAMETER_DEFAULTS,
} from '../../../src/contract/parameters';
import { MIB } from '../../../src/dataplane';
import type { StoredJob } from '../../../src/contract/job';
import type { NormalizedJob } from '../../../src/contract/job';
import { readJson, writeJson } from '../../../src/storage/json';
import type { PartitionWork } from '../../../src/contract/plan';
import { partitionWorkUriOfPlan, progressUri, resultUri } from '../../../src/contract/layout';
import {
  type Counters,
  emptyCounters,
  type ItemResult,
  type PartitionResult,
} from '../../../src/contract/results';
import type { Storage } from '../../../src/storage/storage';
import type { SidecarConfig } from './config';
import type { Logger } from './log';
import { emfLine } from './metrics';
import { ModelClient, ModelUnavailableError } from './model-client';
import { partitionFlow } from './flow-control';
import { processItem } from './process-item';

export interface PartitionDeps {
  readonly storage: Storage;
  readonly log: Logger;
  /**
   * Why the model is gone, if the sidecar can tell: local runs pass its PID, on ECS the task metadata
   * endpoint says when its container exited.
   */
  readonly modelExited?: () => string | undefined;
  readonly signal: AbortSignal;
  readonly writeMetrics?: (line: string) => void;
}

/** Why a partition stopped before its end; the result records it and the process exits non-zero. */
export class PartitionFatalError extends Error {
  override readonly name = 'PartitionFatalError';
}

/**
 * Runs one partition of a plan: waits for the model, negotiates the parameters, transforms every
 * work item (several objects at once, with at most MaxConcurrentTransforms invocations in flight in
 * all), and reports progress and the final result. Objects that fail are recorded and the others go
 * on (SageMaker's behaviour); only a fatal condition (model gone, stopped) ends the partition early.
 */
export async function runPartition(config: SidecarConfig, deps: PartitionDeps): Promise<PartitionResult> {
  const { storage, log } = deps;
  const startedAt = new Date().toISOString();
  // Only this partition's document, not the whole plan: its size follows the partition's work.
  const [{ job }, partition] = await Promise.all([
    readJson<StoredJob>(storage, config.jobUri),
    readJson<PartitionWork>(storage, partitionWorkUriOfPlan(config.planUri, config.partition)),
  ]);
  const plan = partition; // workUri and outputUri, as the whole plan has them
  const counters: Counters = { ...emptyCounters(), objectsTotal: partition.items.length };
  const items: ItemResult[] = [];
  let effective: EffectiveParameters = PARAMETER_DEFAULTS;
  let fatal: string | undefined;
  /** Whether `fatal` is the model's doing (FailureReason's AlgorithmError). */
  let modelFailed = false;
  let client: ModelClient | undefined;
  let lastMetrics = emptyCounters();
  let lastLatency = { total: 0, count: 0 };

  const syncStats = () => {
    if (!client) return;
    counters.invocations = client.stats.invocations;
    counters.invocationRetries = client.stats.retries;
    counters.modelErrors4xx = client.stats.errors4xx;
    counters.modelErrors5xx = client.stats.errors5xx;
    counters.modelTimeouts = client.stats.timeouts;
  };
  const writeProgress = async () => {
    syncStats();
    await writeJson(storage, progressUri(plan.workUri, config.partition), {
      partition: config.partition,
      updatedAt: new Date().toISOString(),
      counters,
    });
    if (deps.writeMetrics && client) {
      const delta = diff(counters, lastMetrics);
      const okCalls = client.stats.latencyCount - lastLatency.count;
      const latency = okCalls > 0 ? (client.stats.latencyMsTotal - lastLatency.total) / okCalls : undefined;
      deps.writeMetrics(emfLine(job.TransformJobName, delta, latency));
      lastMetrics = { ...counters };
      lastLatency = { total: client.stats.latencyMsTotal, count: client.stats.latencyCount };
    }
  };
  const ticker = setInterval(
    () => void writeProgress().catch((e) => log.warn('progress write failed', { error: String(e) })),
    config.progressIntervalMs,
  );

  try {
    effective = await negotiate(config, job, deps);
    log.info(
      `effective parameters: MaxConcurrentTransforms=${effective.MaxConcurrentTransforms} BatchStrategy=${effective.BatchStrategy} MaxPayloadInMB=${effective.MaxPayloadInMB} InvocationsTimeoutInSeconds=${job.ModelClientConfig.InvocationsTimeoutInSeconds} InvocationsMaxRetries=${job.ModelClientConfig.InvocationsMaxRetries}`,
      { items: partition.items.length, bytes: partition.bytes },
    );
    client = new ModelClient({
      url: config.modelUrl,
      connections: effective.MaxConcurrentTransforms,
      invocationTimeoutMs: job.ModelClientConfig.InvocationsTimeoutInSeconds * 1000,
      maxRetries: job.ModelClientConfig.InvocationsMaxRetries,
    });
    // MaxPayloadInMB 0 (no limit) streams whole objects: reserve as for the default payload.
    const flow = partitionFlow({
      maxConcurrentTransforms: effective.MaxConcurrentTransforms,
      payloadBytes: (effective.MaxPayloadInMB || PARAMETER_DEFAULTS.MaxPayloadInMB) * MIB,
    });
    const queue = [...partition.items];
    const inner = new AbortController();
    const stop = () => inner.abort(deps.signal.reason);
    deps.signal.addEventListener('abort', stop, { once: true });
    const c = client;
    /** Items opened so far: an item's rank (the older, the sooner it is served). */
    let opened = 0;
    const lane = async () => {
      for (let item = queue.shift(); item && !inner.signal.aborted; item = queue.shift()) {
        const object = item.target;
        const large = (item.range ? item.range.end - item.range.start : object.size) > flow.payloadBytes;
        const rank = opened++;
        // A large object takes its packing permit once its input is open (a GET's first byte can
        // take tens of ms), so the next object is ready to pack the moment a permit comes back. The
        // permit goes back once the object's last mini-batch is packed, not when its upload
        // completes: the next object packs while this one's last answers come back and its output is
        // completed (fdatasync and rename, or CompleteMultipartUpload), so the slots do not wait at
        // object boundaries.
        let permit = false;
        const admit = large
          ? async () => {
              await flow.largeObjects.acquire(rank);
              permit = true;
            }
          : undefined;
        const handBack = () => {
          if (permit) flow.largeObjects.release();
          permit = false;
        };
        const result = await processItem({
          job,
          plan,
          item,
          object,
          effective,
          client: c,
          flow,
          storage,
          counters,
          signal: inner.signal,
          modelExited: deps.modelExited,
          admit,
          packed: handBack,
          rank,
        }).finally(handBack);
        if (result.fatal !== undefined) {
          if (fatal === undefined) modelFailed = true; // an item ends the partition only when the model is gone
          fatal ??= result.fatal;
          inner.abort(new PartitionFatalError(result.fatal));
          break;
        }
        items.push(result.item);
        if (result.item.status === 'Completed') counters.objectsCompleted++;
        else {
          counters.objectsFailed++;
          log.error(
            `object failed: ${object.uri}${item.range ? ` (shard ${item.shard})` : ''}: ${result.item.error?.message}`,
            {
              object: object.uri,
              shard: item.shard,
              offset: result.item.error?.offset,
            },
          );
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(flow.objects, partition.items.length) }, lane));
    deps.signal.removeEventListener('abort', stop);
    log.info('flow control', {
      invocationsInFlightPeak: flow.slots.peak,
      miniBatchesPackedPeak: flow.packed.peak,
      budgetPeakBytes: flow.budget.peak,
      budgetBytes: flow.budget.limit,
    });
    if (deps.signal.aborted && !fatal)
      fatal = `the worker was stopped (${String(deps.signal.reason ?? 'SIGTERM')}) before it finished`;
  } catch (e) {
    const known =
      e instanceof ModelUnavailableError ||
      e instanceof PartitionFatalError ||
      e instanceof ModelParametersError;
    fatal = known ? e.message : `worker failed: ${(e as Error).stack ?? e}`;
    modelFailed = known;
  } finally {
    clearInterval(ticker);
  }
  syncStats();
  await client?.close();
  const result: PartitionResult = {
    partition: config.partition,
    startedAt,
    endedAt: new Date().toISOString(),
    effective,
    items,
    counters,
    ...(fatal
      ? {
          fatal: `worker ${config.partition}: ${fatal}`,
          // The model's failure (never healthy, gone, asking for values out of range), unless the
          // worker was stopped from outside or failed in its own code.
          fatalCategory: !deps.signal.aborted && modelFailed ? 'AlgorithmError' : 'InternalServerError',
        }
      : {}),
  };
  await writeProgress().catch(() => {});
  await writeJson(storage, resultUri(plan.workUri, config.partition), result);
  return result;
}

async function negotiate(
  config: SidecarConfig,
  job: NormalizedJob,
  deps: PartitionDeps,
): Promise<EffectiveParameters> {
  const probe = new ModelClient({
    url: config.modelUrl,
    connections: 1,
    invocationTimeoutMs: 10_000,
    maxRetries: 0,
  });
  try {
    await raceAbort(
      probe.waitUntilHealthy(job.Extensions.ModelStartupTimeoutInSeconds * 1000, deps.modelExited),
      deps.signal,
    ).catch((e: unknown) => {
      // Name the model: the task's other containers say nothing of it.
      if (e instanceof ModelUnavailableError)
        throw new ModelUnavailableError(`model "${job.ModelName}": ${e.message}`);
      throw e;
    });
    const asked = asksModel(job) ? await probe.executionParameters() : undefined;
    return negotiateParameters(job, asked, job.TransformInput.SplitType);
  } finally {
    await probe.close();
  }
}

function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted)
    return Promise.reject(new PartitionFatalError('stopped before the model became healthy'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new PartitionFatalError('stopped before the model became healthy'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function diff(a: Counters, b: Counters): Counters {
  const out = { ...a };
  for (const k of Object.keys(out) as Array<keyof Counters>) out[k] = a[k] - b[k];
  return out;
}
