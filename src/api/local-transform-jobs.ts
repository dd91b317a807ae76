import { matchesFilters, summaryOrder } from '../client/list';
import {
  failureReason,
  type TransformJobDescription,
  type TransformJobStatus,
} from '../contract/description';
import type { ModelSpec } from '../contract/deployment';
import type { NormalizedJob, StoredJob } from '../contract/job';
import type { EffectiveParameters } from '../contract/parameters';
import type { JobRef } from '../contract/state';
import { JobValidationError } from '../job/problems';
import { readReports } from '../lifecycle/reports';
import { DockerUnavailableError, ModelImageError, prepareModelImage } from '../local/docker-model';
import { exampleModelSource } from '../local/example-models';
import { runLocalJob } from '../local/runner';
import type { ModelSource } from '../local/worker';
import { readJsonIfExists } from '../storage/json';
import type { Storage } from '../storage/storage';
import type { ApiIdentity } from './arns';
import type { JobView } from './job-description';
import { pageOf, type ListQuery } from './listing';
import { type ModelRegistry, modelSpecOf } from './model-registry';
import { ApiError, validationError } from './protocol';
import { nameInUse, stopTargetNotFound, type TransformJobs } from './transform-jobs';
import { LIST_MAX_RESULTS } from '../client/defaults';

export interface LocalTransformJobsOptions {
  readonly identity: ApiIdentity;
  readonly storage: Storage;
  readonly models: ModelRegistry;
  /** Serves every model whose image cannot run here (`--model-command`). */
  readonly modelCommand?: string;
  /** Where the jobs' work locations go: `<workRoot>/<name>/`. */
  readonly workRoot: string;
  /** Environment for the sidecars (storage endpoint settings). */
  readonly sidecarEnv?: NodeJS.ProcessEnv;
  /** Relative `file://` locations are resolved against it. @default process.cwd() */
  readonly cwd?: string;
  /** One line per job event, for the server's log. */
  readonly log?: (line: string) => void;
}

interface LocalJob {
  readonly name: string;
  readonly request: Record<string, unknown>;
  readonly creationTime: string;
  lastModifiedTime: string;
  status: TransformJobStatus;
  job?: NormalizedJob;
  startTime?: string;
  endTime?: string;
  failureReason?: string;
  effective?: EffectiveParameters;
  readonly abort: AbortController;
  done?: Promise<void>;
}

/**
 * Jobs run on this machine, each through the local runner (the same stages as a deployment: validate,
 * plan, one sidecar and one model process per instance, assemble, finalize, cleanup), all at once in
 * this process. Names are claimed here: a name used once is used for good, as in SageMaker, for as
 * long as the server runs.
 */
export class LocalTransformJobs implements TransformJobs {
  readonly label = 'local: jobs run on this machine';
  readonly identity: ApiIdentity;
  readonly #o: LocalTransformJobsOptions;
  readonly #jobs = new Map<string, LocalJob>();

  constructor(options: LocalTransformJobsOptions) {
    this.#o = options;
    this.identity = options.identity;
  }

  async create(request: Record<string, unknown>): Promise<void> {
    const name = typeof request.TransformJobName === 'string' ? request.TransformJobName : undefined;
    if (name !== undefined && this.#jobs.has(name)) throw nameInUse(this.identity, name);

    const now = new Date().toISOString();
    const entry: LocalJob = {
      name: name ?? '',
      request,
      creationTime: now,
      lastModifiedTime: now,
      status: 'InProgress',
      abort: new AbortController(),
    };
    // Claimed before the first await, so two requests with one name cannot both start.
    if (name !== undefined) this.#jobs.set(name, entry);
    let chosen: { model: ModelSource; modelSpec?: ModelSpec };
    try {
      chosen = await this.#modelFor(request.ModelName);
    } catch (e) {
      if (name !== undefined) this.#jobs.delete(name);
      throw e;
    }
    const { model, modelSpec } = chosen;

    let onValidated!: (ref: JobRef) => void;
    const validated = new Promise<JobRef>((resolve) => {
      onValidated = resolve;
    });
    const run = runLocalJob({
      request,
      storage: this.#o.storage,
      model,
      ...(modelSpec ? { modelSpec } : {}),
      workRoot: this.#o.workRoot,
      sidecarEnv: this.#o.sidecarEnv ?? {},
      signal: entry.abort.signal,
      ...(this.#o.cwd ? { cwd: this.#o.cwd } : {}),
      onPhase: (phase, detail) => {
        if (phase === 'validated') onValidated(detail as JobRef);
        if (phase === 'transforming' && !entry.startTime) {
          entry.startTime = new Date().toISOString();
          entry.lastModifiedTime = entry.startTime;
        }
      },
    });
    let ref: JobRef;
    try {
      ref = await Promise.race([validated, run.then(() => validated)]);
    } catch (e) {
      // Nothing ran: SageMaker keeps no record of a request it refused, so the name stays free.
      if (name !== undefined) this.#jobs.delete(name);
      if (e instanceof JobValidationError)
        throw validationError(e.problems, name ? `Transform job "${name}"` : undefined);
      throw new ApiError(
        'InternalFailure',
        `could not start transform job "${name}": ${(e as Error).message}`,
        500,
      );
    }
    const stored = await readJsonIfExists<StoredJob>(this.#o.storage, ref.jobUri).catch(() => undefined);
    if (stored) entry.job = stored.job;
    this.#o.log?.(`transform job ${entry.name}: InProgress (model ${describeSource(model)})`);
    entry.done = run.then(
      (result) => this.#finished(entry, result.description, ref),
      (e: Error) => {
        entry.status = 'Failed';
        entry.failureReason = failureReason(
          'InternalServerError',
          `Transform job "${entry.name}": ${e.message}`,
        );
        entry.endTime = new Date().toISOString();
        entry.lastModifiedTime = entry.endTime;
        this.#o.log?.(`transform job ${entry.name}: Failed: ${e.message}`);
      },
    );
  }

  async #finished(entry: LocalJob, d: TransformJobDescription, ref: JobRef): Promise<void> {
    // The parameters in force, as the workers negotiated them with the model.
    const reports = await readReports(this.#o.storage, ref.workUri).catch(() => undefined);
    const first = reports ? [...reports.results.values()][0] : undefined;
    if (first) entry.effective = first.effective;
    entry.status = d.TransformJobStatus;
    if (d.FailureReason) entry.failureReason = d.FailureReason;
    if (d.TransformStartTime) entry.startTime = d.TransformStartTime;
    entry.endTime = d.TransformEndTime ?? new Date().toISOString();
    entry.lastModifiedTime = entry.endTime;
    this.#o.log?.(
      `transform job ${entry.name}: ${d.TransformJobStatus}${d.FailureReason ? `: ${d.FailureReason}` : ''}`,
    );
  }

  /**
   * Which server a job's model runs on: an example model named by the created model's image; the
   * created model's image in Docker when the engine holds it; `--model-command`; an example model
   * named by the ModelName. A created model's artifacts and environment come along.
   */
  async #modelFor(modelName: unknown): Promise<{ model: ModelSource; modelSpec?: ModelSpec }> {
    if (typeof modelName !== 'string') return { model: { kind: 'command', command: 'false' } }; // validation will refuse
    const created = await this.#o.models.get(modelName);
    const modelSpec = created ? modelSpecOf(created) : undefined;
    const command = this.#o.modelCommand
      ? ({ kind: 'command', command: this.#o.modelCommand } as const)
      : undefined;
    const withSpec = (model: ModelSource) => ({ model, ...(modelSpec ? { modelSpec } : {}) });
    const image = modelSpec?.image;
    const example = image ? exampleModelSource(image) : undefined;
    if (example) return withSpec(example);
    // An image runs where this machine can run it: never pulled here, so a registry's image that
    // needs credentials (ECR) does not stall CreateTransformJob; `--model-command` serves it instead.
    let whyNotDocker: string | undefined;
    if (created && image) {
      try {
        await prepareModelImage(image, { pull: false });
        return withSpec({ kind: 'image', image });
      } catch (e) {
        if (!(e instanceof DockerUnavailableError || e instanceof ModelImageError)) throw e;
        whyNotDocker = e.message;
      }
    }
    const model = (created ? command : undefined) ?? exampleModelSource(modelName) ?? command;
    if (!model) {
      if (!created) throw this.#o.models.notFound(modelName);
      throw validationError(
        [
          {
            path: 'ModelName',
            message: `model "${modelName}" has the image ${JSON.stringify(image ?? '')}, which cannot run on this machine${whyNotDocker ? ` (${whyNotDocker})` : ''}; start \`batch-transform api --local\` with --model-command "<command that serves it>"`,
          },
        ],
        `Transform job`,
      );
    }
    return withSpec(model);
  }

  async get(name: string): Promise<JobView | undefined> {
    const entry = this.#jobs.get(name);
    return entry ? view(entry) : undefined;
  }

  async list(q: ListQuery): Promise<{ views: JobView[]; nextToken?: string }> {
    const all = [...this.#jobs.values()]
      .filter((j) => j.job) // still being validated: not a job yet
      .map(view)
      .filter((v) => (!q.StatusEquals || v.status === q.StatusEquals) && matchesFilters(summaryOf(v), q))
      .sort((a, b) =>
        summaryOrder(q.SortBy ?? 'CreationTime', (q.SortOrder ?? 'Descending') === 'Descending')(
          summaryOf(a),
          summaryOf(b),
        ),
      );
    const page = pageOf(all, q.MaxResults ?? LIST_MAX_RESULTS.default, q.NextToken);
    return { views: page.items, ...(page.nextToken ? { nextToken: page.nextToken } : {}) };
  }

  async stop(name: string): Promise<void> {
    const entry = this.#jobs.get(name);
    if (!entry) throw stopTargetNotFound(this.identity, name);
    if (entry.status !== 'InProgress') return;
    // Stopping until the workers are down and the stopped job is finalized (StopTransformJob's docs).
    entry.status = 'Stopping';
    entry.lastModifiedTime = new Date().toISOString();
    this.#o.log?.(`transform job ${name}: Stopping`);
    entry.abort.abort('StopTransformJob');
  }

  async close(): Promise<void> {
    for (const entry of this.#jobs.values()) if (entry.status === 'InProgress') await this.stop(entry.name);
    await Promise.all([...this.#jobs.values()].map((e) => e.done));
  }
}

function view(j: LocalJob): JobView {
  return {
    name: j.name,
    status: j.status,
    request: j.request,
    ...(j.job ? { job: j.job } : {}),
    creationTime: j.creationTime,
    lastModifiedTime: j.lastModifiedTime,
    ...(j.startTime ? { startTime: j.startTime } : {}),
    ...(j.endTime ? { endTime: j.endTime } : {}),
    ...(j.failureReason ? { failureReason: j.failureReason } : {}),
    ...(j.effective ? { effective: j.effective } : {}),
  };
}

function summaryOf(v: JobView) {
  return {
    TransformJobName: v.name,
    TransformJobStatus: v.status,
    CreationTime: v.creationTime,
    LastModifiedTime: v.lastModifiedTime,
  };
}

function describeSource(m: ModelSource): string {
  if (m.kind === 'argv') return m.label;
  if (m.kind === 'command') return `command: ${m.command}`;
  return m.kind === 'image' ? `image in Docker: ${m.image}` : m.url;
}
