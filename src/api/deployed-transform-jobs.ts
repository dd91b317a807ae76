import { BatchTransformError } from '../client/aws';
import type { JobDescription } from '../client/describe';
import { LIST_MAX_RESULTS } from '../client/defaults';
import type { Transformer } from '../client/transformer';
import type { NormalizedJob } from '../contract/job';
import { INSTANCE_CATALOG } from '../job/instances';
import { JobValidationError } from '../job/problems';
import type { TransformJobRequest } from '../job/schema';
import { checkRequest } from '../job/validate';
import { STACK_OUTPUTS } from '../client/deployment';
import { defaultCreatedModelImages } from '../deploy/model-images';
import { type ApiIdentity, identityOfArn } from './arns';
import { ModelRegistry, StoredModels } from './model-registry';
import type { JobView } from './job-description';
import { type ListQuery, pageOf } from './listing';
import { ApiError, validationError } from './protocol';
import { nameInUse, stopTargetNotFound, type TransformJobs } from './transform-jobs';

/**
 * Why CreateModel is refused with a deployed stack whose models location is unknown: the server was
 * given a state machine ARN, not a stack whose outputs name it.
 */
export const DEPLOYED_MODELS_UNKNOWN =
  "CreateModel needs the stack's models location: start the server with --stack NAME (its ModelsRoot output) or --models-root s3://<work bucket>/models/";

/**
 * The models of a deployed stack: kept in its models location (`s3://<work bucket>/models/`), where
 * Validate finds them, with the images the stack allows created models to use. Both come from the
 * stack's outputs (ModelsRoot, CreatedModelImages) unless given; without outputs the images default to
 * the construct's default, ECR repositories of the stack's account.
 */
export async function deployedModelRegistry(
  transformer: Transformer,
  identity: ApiIdentity,
  given: { readonly modelsRoot?: string; readonly allowedImages?: readonly string[] } = {},
): Promise<ModelRegistry> {
  const outputs = (await transformer.deployment()).outputs ?? {};
  const root = given.modelsRoot ?? outputs[STACK_OUTPUTS.modelsRoot];
  if (!root) return new ModelRegistry(identity, { createRefusal: DEPLOYED_MODELS_UNKNOWN });
  const listed = outputs[STACK_OUTPUTS.createdModelImages];
  const allowedImages =
    given.allowedImages ??
    (listed ? (JSON.parse(listed) as string[]) : defaultCreatedModelImages(identity.account));
  return new ModelRegistry(identity, {
    store: new StoredModels(transformer.storage(), root.endsWith('/') ? root : `${root}/`),
    allowedImages,
  });
}

/** The request members a description carries back, which the normalized job is rebuilt from. */
const REQUEST_FIELDS = [
  'TransformJobName',
  'ModelName',
  'MaxConcurrentTransforms',
  'MaxPayloadInMB',
  'BatchStrategy',
  'Environment',
  'ModelClientConfig',
  'TransformInput',
  'TransformOutput',
  'TransformResources',
  'DataProcessing',
  'ExperimentConfig',
  'DataCaptureConfig',
  'Extensions',
  'Tags',
] as const;

/**
 * Jobs on a deployed stack, through the typed client (src/client) exactly as the CLI's `submit`,
 * `describe`, `stop` and `list` use it: a job is a Step Functions execution named after it, and the
 * user's own AWS credentials reach AWS. Step Functions ends a stopped execution at once, so a job goes
 * from InProgress to Stopped with no Stopping between.
 */
export class DeployedTransformJobs implements TransformJobs {
  readonly label: string;

  private constructor(
    readonly transformer: Transformer,
    readonly identity: ApiIdentity,
    stateMachineArn: string,
  ) {
    this.label = `deployed: jobs run on ${stateMachineArn}`;
  }

  /** Finds the state machine first, so the server's ARNs name its region and account. */
  static async open(transformer: Transformer): Promise<DeployedTransformJobs> {
    const { stateMachineArn } = await transformer.deployment();
    const identity = identityOfArn(stateMachineArn);
    if (!identity) throw new Error(`"${stateMachineArn}" is not an ARN with a region and an account`);
    return new DeployedTransformJobs(transformer, identity, stateMachineArn);
  }

  async create(request: Record<string, unknown>): Promise<void> {
    try {
      await this.transformer.transform(request as TransformJobRequest);
    } catch (e) {
      const name = typeof request.TransformJobName === 'string' ? request.TransformJobName : '';
      if (e instanceof JobValidationError) throw validationError(e.problems, `Transform job "${name}"`);
      if (e instanceof BatchTransformError && e.kind === 'AlreadyExists')
        throw nameInUse(this.identity, name);
      throw failure(e);
    }
  }

  async get(name: string): Promise<JobView | undefined> {
    try {
      return viewOf(await this.transformer.describe(name));
    } catch (e) {
      if (e instanceof BatchTransformError && e.kind === 'NotFound') return undefined;
      throw failure(e);
    }
  }

  /**
   * ListExecutions caps what one listing returns at ListTransformJobs' 100, so pages reach the
   * 100th job of the order asked for and no further.
   */
  async list(q: ListQuery): Promise<{ views: JobView[]; nextToken?: string }> {
    const { NextToken, ...filters } = q;
    let listed: Awaited<ReturnType<Transformer['list']>>;
    try {
      listed = await this.transformer.list({ ...filters, MaxResults: LIST_MAX_RESULTS.max });
    } catch (e) {
      throw failure(e);
    }
    const views = listed.TransformJobSummaries.map(
      (s): JobView => ({
        name: s.TransformJobName,
        status: s.TransformJobStatus,
        request: {},
        creationTime: s.CreationTime,
        lastModifiedTime: s.LastModifiedTime,
        ...(s.TransformEndTime ? { endTime: s.TransformEndTime } : {}),
      }),
    );
    const page = pageOf(views, q.MaxResults ?? LIST_MAX_RESULTS.default, NextToken);
    return { views: page.items, ...(page.nextToken ? { nextToken: page.nextToken } : {}) };
  }

  async stop(name: string): Promise<void> {
    try {
      await this.transformer.stop(name);
    } catch (e) {
      if (e instanceof BatchTransformError && e.kind === 'NotFound')
        throw stopTargetNotFound(this.identity, name);
      // A job that has ended is left as it is, as the local back end does.
      if (e instanceof BatchTransformError && e.kind === 'NotInProgress') return;
      throw failure(e);
    }
  }

  async close(): Promise<void> {
    this.transformer.close();
  }
}

function failure(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError('InternalFailure', (e as Error).message, 500);
}

/** A description of a deployed job as the server's view: the request's members, defaults filled in. */
function viewOf(d: JobDescription): JobView {
  const request: Record<string, unknown> = {};
  for (const key of REQUEST_FIELDS) if (d[key] !== undefined) request[key] = d[key];
  // Rebuilt with the same validation the stack ran (every catalog type allowed: the stack took it).
  const checked = checkRequest(request, { enabledInstanceTypes: Object.keys(INSTANCE_CATALOG) });
  const job: NormalizedJob | undefined = checked.ok ? checked.job : undefined;
  const end = d.TransformEndTime;
  return {
    name: d.TransformJobName,
    status: d.TransformJobStatus,
    request,
    ...(job ? { job } : {}),
    creationTime: d.CreationTime,
    lastModifiedTime: end ?? d.TransformStartTime ?? d.CreationTime,
    ...(d.TransformStartTime ? { startTime: d.TransformStartTime } : {}),
    ...(end ? { endTime: end } : {}),
    ...(d.FailureReason ? { failureReason: d.FailureReason } : {}),
  };
}
