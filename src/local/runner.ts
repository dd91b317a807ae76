import type { StateFailure } from '../contract/state';
import type { TransformJobDescription } from '../contract/description';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { NormalizedJob, StoredJob } from '../contract/job';
import { jobWorkUri } from '../contract/layout';
import { JobValidationError } from '../job/problems';
import { checkRequest } from '../job/validate';
import { cleanupStage } from '../lifecycle/cleanup';
import { assembleThenFinalize } from '../lifecycle/failure-path';
import { planStage } from '../lifecycle/plan';
import { jobCounters, readReports } from '../lifecycle/reports';
import type { ModelSpec } from '../contract/deployment';
import type { JobRef, PlanRef } from '../contract/state';
import { validateStage } from '../lifecycle/validate';
import type { Counters } from '../contract/results';
import { Storages } from '../storage/index';
import { readJsonIfExists } from '../storage/json';
import type { Storage } from '../storage/storage';
import { joinUri, locationsOverlap, parseLocation } from '../storage/uri';
import { removeRunContainers } from './docker-model';
import { lockJobName } from './job-name-lock';
import { sidecarArgv } from './sidecar-bundle';
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
  /** The run's logs (one file per model and sidecar process), kept after the run. */
  readonly logDir: string;
  /** What the run could not do or check after the job ended (cleanup), in words. */
  readonly warnings: readonly string[];
}

/** What a local run allows: file:// locations, any catalog instance type, no deployed models. */
const LOCAL_CONTEXT = { models: {}, enabledInstanceTypes: [], maxInstanceCount: 100, local: true } as const;

/**
 * The request checked as a local run checks it, before anything reads its fields: the normalized
 * job, or a JobValidationError listing every problem with its field path.
 */
export function checkLocalRequest(request: unknown, cwd: string = process.cwd()): NormalizedJob {
  const resolved = resolveRelativeFileUris(request, cwd);
  const checked = checkRequest(resolved, LOCAL_CONTEXT);
  if (checked.ok) return checked.job;
  const name = (request as { TransformJobName?: unknown } | null)?.TransformJobName;
  throw new JobValidationError(checked.problems, typeof name === 'string' ? name : undefined);
}

/**
 * The work location may not lie inside the input (the job would read its own job.json and plan) nor
 * overlap the output (plan, progress and summary would land among the outputs): the same rule the
 * request applies between its input and its output.
 */
function refuseOverlappingWorkLocation(job: NormalizedJob, workUri: string): void {
  const problems = [
    ['TransformInput.DataSource.S3DataSource.S3Uri', job.TransformInput.DataSource.S3DataSource.S3Uri],
    ['TransformOutput.S3OutputPath', job.TransformOutput.S3OutputPath],
  ]
    .filter(([, uri]) => locationsOverlap(workUri, uri!))
    .map(([path, uri]) => ({
      path: path!,
      message: `${uri} overlaps the job's work location ${workUri} (--work-dir); choose a work location outside the job's input and output`,
    }));
  if (problems.length > 0) throw new JobValidationError(problems, job.TransformJobName);
}

/**
 * Where a local run keeps what only this machine needs: `logs/`, `model/` (extracted ModelDataUrl)
 * and `staging/` (file:// outputs being written). With a file:// work root that is the job's own
 * work location; with an s3:// one, a folder per job name under the system temp folder. The job
 * name's lock (`<job>.lock`) sits beside it, so one run at a time owns it: runs never share scratch.
 */
export function localRunPaths(workRoot: string, jobName: string) {
  const root = parseLocation(workRoot);
  const localRoot =
    root.scheme === 'file' ? root.path.replace(/\/+$/, '') : join(tmpdir(), 'batch-transform', 'local');
  const runDir = join(localRoot, jobName);
  return {
    lock: join(localRoot, `${jobName}.lock`),
    runDir,
    logDir: join(runDir, 'logs'),
    modelDir: join(runDir, 'model'),
    stagingDir: join(runDir, 'staging'),
  };
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
  const ctx = { ...LOCAL_CONTEXT, models, workRoot };
  // Checked before anything is written: the name is claimed before its work location is touched.
  const checkedJob = checkLocalRequest(o.request, cwd);
  const jobName = checkedJob.TransformJobName;
  refuseOverlappingWorkLocation(checkedJob, jobWorkUri(workRoot, jobName));
  const paths = localRunPaths(workRoot, jobName);
  const lock = await lockJobName(paths.lock, jobName);
  const warnings: string[] = [];
  let stopped = false;
  let workers: WorkerHandle[] = [];
  const onAbort = () => {
    stopped = true;
    for (const w of workers) void w.stop();
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) stopped = true;
  // file:// outputs are written under the run's staging folder and renamed into place.
  const storage = o.storage instanceof Storages ? o.storage.withFileStaging(paths.stagingDir) : o.storage;
  // Found (and, the first time, built) while the job is validated and planned, not after.
  const sidecar = sidecarArgv();
  sidecar.catch(() => {});
  let ref: JobRef | undefined;
  try {
    // What an earlier run of this name left (a dead run's partial uploads and scratch, a finished
    // run's plan and reports) must not mix with this run's.
    await clearEarlierRun(storage, jobWorkUri(workRoot, jobName), paths.runDir, warnings);
    // A dead run's model containers (it could not remove them) go with the rest of what it left.
    if (o.model.kind === 'image') await removeRunContainers(paths.runDir);
    ref = await validateStage({ request }, ctx, storage);
    o.onPhase?.('validated', ref);
    const description = await transform(
      o,
      ref,
      storage,
      paths,
      sidecar,
      () => stopped,
      (w) => {
        workers = w;
        if (stopped) onAbort();
      },
    );
    return { description, ref, logDir: paths.logDir, warnings };
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    if (ref) await cleanUp(storage, ref, warnings);
    // Workers remove their own containers; this covers a worker that failed to start beside them.
    if (o.model.kind === 'image') await removeRunContainers(paths.runDir);
    await rm(paths.modelDir, { recursive: true, force: true });
    await rm(paths.stagingDir, { recursive: true, force: true });
    await lock.release();
  }
}

/** Plan, workers, assemble and finalize: the job after validation. */
async function transform(
  o: LocalRunOptions,
  ref: JobRef,
  storage: Storage,
  paths: ReturnType<typeof localRunPaths>,
  sidecar: Promise<string[]>,
  isStopped: () => boolean,
  started: (workers: WorkerHandle[]) => void,
): Promise<TransformJobDescription> {
  let failure: StateFailure | undefined;
  await mkdir(paths.logDir, { recursive: true });
  let plan: PlanRef | undefined;
  try {
    plan = await planStage(ref, storage);
    o.onPhase?.('planned', plan);
  } catch (e) {
    failure = { Error: (e as Error).name, Cause: (e as Error).message };
  }
  if (plan && !isStopped()) {
    await mkdir(paths.modelDir, { recursive: true });
    if (o.modelSpec?.modelDataUrl) {
      try {
        // Loaded here: only a job with ModelDataUrl reads tar (as the sidecar's fetch-model does).
        const { fetchModelData } = await import('../model/model-data');
        await fetchModelData(storage, o.modelSpec.modelDataUrl, paths.modelDir);
      } catch (e) {
        // As in SageMaker, model artifacts that cannot be fetched fail the job, saying why.
        failure = { Error: 'ModelDataError', Cause: (e as Error).message };
      }
    }
  }
  if (plan && !isStopped() && !failure) {
    o.onPhase?.('transforming');
    const p = plan;
    const argv = await sidecar;
    const workers = await Promise.all(
      p.partitions.map(({ index }) =>
        startWorker({
          ref,
          plan: p,
          partition: index,
          model: o.model,
          modelDir: paths.modelDir,
          modelData: Boolean(o.modelSpec?.modelDataUrl),
          runDir: paths.runDir,
          logDir: paths.logDir,
          env: { ...(o.sidecarEnv ?? {}), FILE_STAGING_DIR: paths.stagingDir },
          progressIntervalMs: o.progressIntervalMs ?? 500,
          sidecarArgv: argv,
        }),
      ),
    );
    started(workers);
    const ticker = o.onProgress ? startProgress(o, storage, ref, p) : undefined;
    const outcomes = await Promise.all(workers.map((w) => w.done));
    clearInterval(ticker);
    const crashed = outcomes.find((r) => r.code !== 0);
    if (crashed && !isStopped())
      failure = { Error: 'WorkerFailed', Cause: crashed.reason ?? 'a worker failed' };
    if (o.onProgress) await reportProgress(o, storage, ref, p);
  }
  // Also after a worker failed: objects whose shards all finished (on healthy workers) still get
  // their `.out`, as whole objects on healthy workers do.
  return assembleThenFinalize(ref, plan, storage, {
    ...(failure ? { failure } : {}),
    stopped: isStopped(),
    onStep: (step) => o.onPhase?.(step),
  });
}

/** The cleanup stage; what it could not do becomes a warning, never the job's outcome. */
async function cleanUp(storage: Storage, ref: JobRef, warnings: string[]): Promise<void> {
  try {
    const report = await cleanupStage(
      { jobName: ref.jobName, workUri: ref.workUri, outputUri: ref.outputUri },
      storage,
    );
    warnings.push(...(report.notChecked ?? []));
  } catch (e) {
    warnings.push(`cleanup of job ${ref.jobName} failed: ${(e as Error).message}`);
  }
}

/** What a job's work location and local run folder hold (layout.ts), and nothing else of a folder. */
const RUN_ENTRIES = ['job.json', 'plan.json', 'summary.json', 'progress/', 'results/', 'shards/'];
const LOCAL_ENTRIES = ['logs', 'model', 'staging'];

/**
 * Removes what an earlier run of the same job name left: its incomplete uploads (by its plan), then
 * its entries in the work location and its local run folder. Only the layout's own names are
 * removed, so a work root pointed at a folder that holds other things loses none of them.
 */
async function clearEarlierRun(
  storage: Storage,
  workUri: string,
  runDir: string,
  warnings: string[],
): Promise<void> {
  const earlier = await readJsonIfExists<StoredJob>(storage, joinUri(workUri, 'job.json')).catch(
    () => undefined,
  );
  const outputUri = earlier?.job?.TransformOutput?.S3OutputPath;
  if (earlier && typeof outputUri === 'string') {
    await cleanUp(storage, { jobName: earlier.job.TransformJobName, workUri, outputUri } as JobRef, warnings);
  }
  for (const entry of RUN_ENTRIES) {
    const uri = joinUri(workUri, entry);
    if (!entry.endsWith('/')) await storage.delete(uri);
    else for await (const o of storage.list(uri)) await storage.delete(o.uri);
  }
  for (const entry of [...LOCAL_ENTRIES, ...RUN_ENTRIES.filter((e) => e.endsWith('/'))])
    await rm(join(runDir, entry), { recursive: true, force: true });
}

function startProgress(o: LocalRunOptions, storage: Storage, ref: JobRef, plan: PlanRef): NodeJS.Timeout {
  return setInterval(
    () => void reportProgress(o, storage, ref, plan).catch(() => {}),
    o.progressIntervalMs ?? 500,
  );
}

async function reportProgress(
  o: LocalRunOptions,
  storage: Storage,
  ref: JobRef,
  plan: PlanRef,
): Promise<void> {
  const counters = jobCounters(await readReports(storage, ref.workUri));
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
  // Only inside plain objects: a wrongly typed field is left for validation to report with its path.
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  const source = r.TransformInput?.DataSource?.S3DataSource;
  if (isObject(r.TransformInput) && isObject(r.TransformInput.DataSource) && isObject(source))
    source.S3Uri = fix(source.S3Uri);
  if (isObject(r.TransformOutput)) r.TransformOutput.S3OutputPath = fix(r.TransformOutput.S3OutputPath);
  return r;
}
