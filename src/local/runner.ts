import type { StateFailure } from '../contract/state';
import type { TransformJobDescription } from '../contract/description';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { cleanupStage } from '../lifecycle/cleanup';
import { assembleThenFinalize } from '../lifecycle/failure-path';
import { planStage } from '../lifecycle/plan';
import { jobCounters, readReports } from '../lifecycle/reports';
import type { ModelSpec } from '../contract/deployment';
import type { JobRef, PlanRef } from '../contract/state';
import { validateStage } from '../lifecycle/validate';
import { fetchModelData } from '../model/model-data';
import type { Counters } from '../contract/results';
import type { Storage } from '../storage/storage';
import { type ModelSource, startWorker, type WorkerHandle } from './worker';

export interface LocalRunOptions {
  /** The CreateTransformJob request (file:// URIs may be relative: `file://./data/`). */
  readonly request: unknown;
  readonly storage: Storage;
  readonly model: ModelSource;
  /** The model's own settings: ModelDataUrl and environment, as a deployment would declare them. */
  readonly modelSpec?: ModelSpec;
  /** Where scratch, plan, progress and summary go. @default file://<tmp>/batch-transform/ */
  readonly workRoot?: string;
  /** Environment for the sidecars (storage endpoint settings). */
  readonly sidecarEnv?: NodeJS.ProcessEnv;
  /** Called about every `progressIntervalMs` while workers run. */
  readonly onProgress?: (p: { counters: Counters; totalBytes: number; objectCount: number }) => void;
  readonly onPhase?: (
    phase: 'validated' | 'planned' | 'transforming' | 'assembling' | 'finalizing',
    detail?: unknown,
  ) => void;
  readonly progressIntervalMs?: number;
  /** Aborting stops the workers and ends the job Stopped. */
  readonly signal?: AbortSignal;
  readonly cwd?: string;
}

export interface LocalRunResult {
  readonly description: TransformJobDescription;
  readonly ref: JobRef;
  readonly logDir: string;
}

/**
 * Runs a whole transform job on this machine with the same stages a deployment runs (validate, plan,
 * one worker per partition, assemble, finalize, cleanup). A worker is a sidecar process beside its own
 * model server process, as in an ECS task. Throws JobValidationError for an invalid request.
 */
export async function runLocalJob(o: LocalRunOptions): Promise<LocalRunResult> {
  const cwd = o.cwd ?? process.cwd();
  const workRoot = o.workRoot ?? `file://${join(tmpdir(), 'batch-transform', 'work')}/`;
  const request = resolveRelativeFileUris(o.request, cwd);
  // The model's own environment goes under the job's, as a deployment's declared model's does.
  const modelName = (request as { ModelName?: unknown } | null)?.ModelName;
  const models = o.modelSpec && typeof modelName === 'string' ? { [modelName]: o.modelSpec } : {};
  const ref = await validateStage(
    { request },
    { models, enabledInstanceTypes: [], maxInstanceCount: 100, workRoot, local: true },
    o.storage,
  );
  o.onPhase?.('validated', ref);

  const scratch = await mkdtemp(join(tmpdir(), `bt-${ref.jobName}-`));
  const logDir = join(scratch, 'logs');
  await mkdir(logDir, { recursive: true });
  let failure: StateFailure | undefined;
  let stopped = false;
  let workers: WorkerHandle[] = [];
  const onAbort = () => {
    stopped = true;
    for (const w of workers) void w.stop();
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    let plan: PlanRef | undefined;
    try {
      plan = await planStage(ref, o.storage);
      o.onPhase?.('planned', plan);
    } catch (e) {
      failure = { Error: (e as Error).name, Cause: (e as Error).message };
    }
    if (plan && !stopped) {
      const modelDir = join(scratch, 'model');
      await mkdir(modelDir, { recursive: true });
      if (o.modelSpec?.modelDataUrl) await fetchModelData(o.storage, o.modelSpec.modelDataUrl, modelDir);
      o.onPhase?.('transforming');
      const p = plan;
      workers = await Promise.all(
        p.partitions.map(({ index }) =>
          startWorker({
            ref,
            plan: p,
            partition: index,
            model: o.model,
            modelDir,
            logDir,
            env: o.sidecarEnv ?? {},
            progressIntervalMs: o.progressIntervalMs ?? 500,
          }),
        ),
      );
      if (o.signal?.aborted) onAbort();
      const ticker = o.onProgress ? startProgress(o, ref, p) : undefined;
      const outcomes = await Promise.all(workers.map((w) => w.done));
      clearInterval(ticker);
      const crashed = outcomes.find((r) => r.code !== 0);
      if (crashed && !stopped)
        failure = { Error: 'WorkerFailed', Cause: crashed.reason ?? 'a worker failed' };
      if (o.onProgress) await reportProgress(o, ref, p);
    }
    // Also after a worker failed: objects whose shards all finished (on healthy workers) still get
    // their `.out`, as whole objects on healthy workers do.
    const description = await assembleThenFinalize(ref, plan, o.storage, {
      ...(failure ? { failure } : {}),
      stopped,
      onStep: (step) => o.onPhase?.(step),
    });
    return { description, ref, logDir };
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    await cleanupStage({ jobName: ref.jobName, workUri: ref.workUri, outputUri: ref.outputUri }, o.storage);
    await rm(join(scratch, 'model'), { recursive: true, force: true });
  }
}

function startProgress(o: LocalRunOptions, ref: JobRef, plan: PlanRef): NodeJS.Timeout {
  return setInterval(() => void reportProgress(o, ref, plan).catch(() => {}), o.progressIntervalMs ?? 500);
}

async function reportProgress(o: LocalRunOptions, ref: JobRef, plan: PlanRef): Promise<void> {
  const counters = jobCounters(await readReports(o.storage, ref.workUri));
  o.onProgress?.({ counters, totalBytes: plan.totalBytes, objectCount: plan.objectCount });
}

/**
 * Job files for local runs may name folders relative to where the command runs (`file://./data/`);
 * the job contract wants absolute locations, so resolve them first.
 */
export function resolveRelativeFileUris(request: unknown, cwd: string): unknown {
  if (typeof request !== 'object' || request === null) return request;
  // biome-ignore lint/suspicious/noExplicitAny: a request not validated yet; only string fields are touched, each checked
  const r = structuredClone(request) as Record<string, any>;
  const fix = (uri: unknown) => {
    if (typeof uri !== 'string' || !uri.startsWith('file://') || uri.startsWith('file:///')) return uri;
    const rel = uri.slice('file://'.length);
    const abs = resolve(cwd, rel);
    return `file://${abs}${rel.endsWith('/') && !abs.endsWith('/') ? '/' : ''}`;
  };
  const source = r.TransformInput?.DataSource?.S3DataSource;
  if (source) source.S3Uri = fix(source.S3Uri);
  if (r.TransformOutput) r.TransformOutput.S3OutputPath = fix(r.TransformOutput.S3OutputPath);
  return r;
}
