import type { StoredJob } from '../contract/job';
import type { NormalizedJob } from '../contract/job';
import { expandPlaceholders, scheduledJobName } from '../job/placeholders';
import { JobValidationError, type Problem } from '../job/problems';
import { checkRequest } from '../job/validate';
import { jobNameUri, jobWorkUri } from '../contract/layout';
import type { Storage } from '../storage/storage';
import { joinUri } from '../storage/uri';
import { readJsonIfExists, writeJson } from '../storage/json';
import type { CreatedModel, DeploymentContext, ModelSpec } from '../contract/deployment';
import { imageAllowed } from '../deploy/model-images';
import { MODEL_NAME } from '../job/schema';
import { readCreatedModel } from './created-models';
import type { JobRef, ValidateEvent } from '../contract/state';
import { negotiateParameters } from '../contract/parameters';
import { checkResumeFrom } from './resume';

/**
 * ECS caps the RunTask `overrides` document at 8 KiB; the model's environment travels in it. Keep a
 * margin for the sidecar's own variables and the JSON around them.
 */
export const ECS_OVERRIDES_BUDGET = 8192 - 1024;

/** Execution names Step Functions makes up when the console user leaves the name empty. */
const GENERATED_EXECUTION_NAME = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The validate stage: checks the request against the job contract and this deployment, claims the
 * job name, stores the normalized job in its work location and returns the small reference the rest
 * of the lifecycle carries. Throws JobValidationError listing every problem, or JobNameInUseError
 * when another execution holds the name.
 */
export async function validateStage(
  event: ValidateEvent,
  ctx: DeploymentContext,
  storage: Storage,
): Promise<JobRef> {
  return (await validateJob(event, ctx, storage)).job;
}

/**
 * validateStage, also answering with the created model (CreateModel on a deployed stack) the job's
 * ModelName resolved to, when it is not one the deployment declares: Validate registers its task
 * definition.
 */
export async function validateJob(
  event: ValidateEvent,
  ctx: DeploymentContext,
  storage: Storage,
): Promise<{ job: JobRef; createdModel?: CreatedModel }> {
  const scheduled = event.scheduledTime ? new Date(event.scheduledTime) : undefined;
  const request = scheduled ? expandScheduled(event.request, scheduled) : event.request;
  const createdModel = await createdModelOf(request, ctx, storage);
  const result = checkRequest(request, {
    enabledInstanceTypes: ctx.enabledInstanceTypes,
    maxInstanceCount: ctx.maxInstanceCount,
    local: ctx.local,
    ...(ctx.local
      ? {}
      : { modelNames: [...Object.keys(ctx.models), ...(createdModel ? [createdModel.ModelName] : [])] }),
  });
  const name = (request as { TransformJobName?: unknown } | null)?.TransformJobName;
  if (!result.ok) throw new JobValidationError(result.problems, typeof name === 'string' ? name : undefined);
  const job = result.job;

  const problems: Problem[] = [];
  if (
    event.executionName &&
    !scheduled &&
    event.executionName !== job.TransformJobName &&
    !GENERATED_EXECUTION_NAME.test(event.executionName)
  ) {
    problems.push({
      path: 'TransformJobName',
      message: `the execution is named "${event.executionName}" but the request names the job "${job.TransformJobName}"; start the execution with the job's name (or leave the name empty)`,
    });
  }
  if (createdModel && !imageAllowed(createdModel.Image, ctx.createdModels?.images ?? [])) {
    problems.push({
      path: 'ModelName',
      message: `model "${createdModel.ModelName}" has the image ${JSON.stringify(createdModel.Image)}, which this deployment does not allow created models to use (allowed: ${(ctx.createdModels?.images ?? []).join(', ') || 'none'}; the construct's createdModelImages)`,
    });
  }
  const model: ModelSpec = createdModel
    ? createdModel.Environment
      ? { environment: createdModel.Environment }
      : {}
    : (ctx.models[job.ModelName] ?? {});
  const modelEnvironment = modelEnvironmentFor(job, model);
  const overridesSize = JSON.stringify(modelEnvironment).length;
  if (!ctx.local && overridesSize > ECS_OVERRIDES_BUDGET) {
    problems.push({
      path: 'Environment',
      message: `the model's environment takes ${overridesSize} bytes of the ECS RunTask overrides, which are capped at 8 KiB (${ECS_OVERRIDES_BUDGET} left for it); declare large settings in the model's environment in the deployment`,
    });
  }

  const workUri = jobWorkUri(ctx.workRoot, job.TransformJobName);
  const jobUri = joinUri(workUri, 'job.json');
  // Before the name is reserved: a request that cannot resume does not take it.
  const resume = await checkResumeFrom(job, ctx.workRoot, storage);
  problems.push(...resume.problems);
  if (problems.length > 0) throw new JobValidationError(problems, job.TransformJobName);

  // Local runs own their work location and may rerun a name; a deployment reserves it for good.
  const creationTime = ctx.local
    ? new Date().toISOString()
    : await reserveJobName(storage, ctx, job.TransformJobName, event.executionName);
  const stored: StoredJob = {
    job,
    ...(event.executionName ? { executionName: event.executionName } : {}),
    creationTime,
    ...(resume.resumeFrom ? { resumeFrom: resume.resumeFrom } : {}),
  };
  await writeJson(storage, jobUri, stored);
  const ref: JobRef = {
    jobName: job.TransformJobName,
    jobUri,
    workUri,
    outputUri: job.TransformOutput.S3OutputPath,
    modelName: job.ModelName,
    instanceType: job.TransformResources.InstanceType,
    instanceCount: job.TransformResources.InstanceCount,
    capacity: job.Capacity,
    modelEnvironment,
    tags: job.Tags,
    creationTime,
  };
  return { job: ref, ...(createdModel ? { createdModel } : {}) };
}

/**
 * The created model a request names, when the deployment keeps created models and declares no model
 * of that name (a declared model wins: its task definitions were deployed with the stack).
 */
async function createdModelOf(
  request: unknown,
  ctx: DeploymentContext,
  storage: Storage,
): Promise<CreatedModel | undefined> {
  const name = (request as { ModelName?: unknown } | null)?.ModelName;
  if (ctx.local || !ctx.createdModels || typeof name !== 'string' || !MODEL_NAME.test(name)) return undefined;
  if (Object.hasOwn(ctx.models, name)) return undefined;
  return readCreatedModel(storage, ctx.workRoot, name);
}

/** What a job-name reservation holds (`jobNameUri`). */
export interface JobNameReservation {
  readonly jobName: string;
  readonly executionName?: string;
  readonly creationTime: string;
}

/**
 * A second job with a name already used, with SageMaker's error code and message for it
 * (CreateTransformJob's `ResourceInUse`; the message as the service words it for processing jobs,
 * see docs/JOB.md "Job names").
 */
export class JobNameInUseError extends Error {
  override readonly name = 'ResourceInUse';
  constructor(
    readonly jobName: string,
    readonly existing: JobNameReservation | undefined,
  ) {
    super(
      `Job name must be unique within an AWS account and region, and a job with this name already exists (transform-job/${jobName}${existing ? `, created ${existing.creationTime}` : ''})`,
    );
  }
}

/**
 * Claims `jobName` with a conditional write (S3 `If-None-Match: *`): of any number of executions
 * validating the same name at once, exactly one creates the record. The record lives under
 * `jobNamesRoot`, which no lifecycle rule expires, so the name stays taken after the job's work
 * location has expired. A retried validate of the execution that holds the name passes (Lambda
 * retries, a redriven execution). Returns the job's creation time (the reservation's).
 */
export async function reserveJobName(
  storage: Storage,
  ctx: DeploymentContext,
  jobName: string,
  executionName: string | undefined,
): Promise<string> {
  if (!ctx.jobNamesRoot) {
    throw new Error('the deployment names no jobNamesRoot, so job names cannot be reserved');
  }
  const uri = jobNameUri(ctx.jobNamesRoot, jobName);
  const record: JobNameReservation = {
    jobName,
    ...(executionName ? { executionName } : {}),
    creationTime: new Date().toISOString(),
  };
  if (await storage.putIfAbsent(uri, `${JSON.stringify(record)}\n`, { contentType: 'application/json' })) {
    return record.creationTime;
  }
  const existing = await readJsonIfExists<JobNameReservation>(storage, uri);
  if (existing && executionName !== undefined && existing.executionName === executionName) {
    return existing.creationTime;
  }
  throw new JobNameInUseError(jobName, existing);
}

/**
 * The model container's environment, as SageMaker builds it: the model's own variables, the job's
 * Environment over them, and the batch variables (REFERENCE.md "Model contract").
 */
export function modelEnvironmentFor(
  job: NormalizedJob,
  model: ModelSpec,
): Array<{ Name: string; Value: string }> {
  const env: Record<string, string> = {
    ...(model.environment ?? {}),
    ...job.Environment,
    SAGEMAKER_BATCH: 'true',
  };
  // SageMaker passes these three only when the request sets them ("If the user doesn't set values for
  // them, they aren't passed": https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-batch-code.html),
  // with the values in force: SplitType None sends one record per request, so SINGLE_RECORD.
  const effective = negotiateParameters(job, undefined, job.TransformInput.SplitType);
  if (job.MaxPayloadInMB !== undefined) env.SAGEMAKER_MAX_PAYLOAD_IN_MB = String(effective.MaxPayloadInMB);
  if (job.BatchStrategy)
    env.SAGEMAKER_BATCH_STRATEGY =
      effective.BatchStrategy === 'MultiRecord' ? 'MULTI_RECORD' : 'SINGLE_RECORD';
  if (job.MaxConcurrentTransforms)
    env.SAGEMAKER_MAX_CONCURRENT_TRANSFORMS = String(effective.MaxConcurrentTransforms);
  return Object.entries(env).map(([Name, Value]) => ({ Name, Value }));
}

/** Applies a schedule's time to the job template: unique name, time placeholders in locations. */
export function expandScheduled(request: unknown, time: Date): unknown {
  if (typeof request !== 'object' || request === null) return request;
  // biome-ignore lint/suspicious/noExplicitAny: a request not validated yet; only string fields are touched, each checked
  const r = structuredClone(request) as Record<string, any>;
  if (typeof r.TransformJobName === 'string') r.TransformJobName = scheduledJobName(r.TransformJobName, time);
  const source = r.TransformInput?.DataSource?.S3DataSource;
  if (source && typeof source.S3Uri === 'string') source.S3Uri = expandPlaceholders(source.S3Uri, time);
  if (r.TransformOutput && typeof r.TransformOutput.S3OutputPath === 'string') {
    r.TransformOutput.S3OutputPath = expandPlaceholders(r.TransformOutput.S3OutputPath, time);
  }
  return r;
}
