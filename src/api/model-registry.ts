import { z } from 'zod';
import { LIST_MAX_RESULTS } from '../client/list';
import { formatPath, type Problem } from '../job/problems';
import { MODEL_NAME } from '../job/schema';
import type { ModelSpec } from '../contract/deployment';
import { type ApiIdentity, modelArn } from './arns';
import { pageOf, type ListQuery } from './listing';
import { ApiError, epochSeconds, validationError } from './protocol';

/**
 * Models created with CreateModel, kept by the server (in memory: a local server's models live as
 * long as it does). Field names, limits and messages are SageMaker's (botocore's service model and
 * the real service's error texts, docs/API.md).
 */

/** ContainerDefinition.Environment: at most 100 entries, keys and values up to 1024 characters. */
const CONTAINER_ENV_MAX_ENTRIES = 100;
const CONTAINER_ENV_TEXT_MAX = 1024;
/** ContainerDefinition.Image: `[\S]+`, up to 255 characters. */
const IMAGE_MAX = 255;
/** ContainerDefinition.ModelDataUrl: up to 1024 characters. */
const MODEL_DATA_URL_MAX = 1024;

/** A member SageMaker has that a batch transform here cannot honour: refused, saying why. */
const refused = (why: string) =>
  z.unknown().superRefine((_v, ctx) => {
    ctx.addIssue({ code: 'custom', message: why });
  });

const ContainerSchema = z.strictObject({
  /** Ignored by SageMaker itself for a model with one container. */
  ContainerHostname: z.string().max(63).optional(),
  Image: z.string().max(IMAGE_MAX).regex(/^\S+$/).optional(),
  /** Private-registry settings: nothing is pulled from a registry here. */
  ImageConfig: z.record(z.string(), z.unknown()).optional(),
  Mode: z
    .enum(['SingleModel', 'MultiModel'])
    .refine((m) => m === 'SingleModel', 'MultiModel containers are not supported; use SingleModel')
    .optional(),
  ModelDataUrl: z.string().min(1).max(MODEL_DATA_URL_MAX).optional(),
  Environment: z
    .record(
      z
        .string()
        .max(CONTAINER_ENV_TEXT_MAX)
        .regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/),
      z.string().max(CONTAINER_ENV_TEXT_MAX),
    )
    .refine((e) => Object.keys(e).length <= CONTAINER_ENV_MAX_ENTRIES, {
      message: `at most ${CONTAINER_ENV_MAX_ENTRIES} entries`,
    })
    .optional(),
  ModelDataSource: refused(
    'ModelDataSource cannot be used with batch transform (SageMaker says the same); give ModelDataUrl, a .tar.gz',
  ).optional(),
  AdditionalModelDataSources: refused(
    'additional model data sources are not supported; give one ModelDataUrl',
  ).optional(),
  ModelPackageName: refused('model packages are not supported; give Image and ModelDataUrl').optional(),
  InferenceSpecificationName: refused(
    'model packages are not supported; give Image and ModelDataUrl',
  ).optional(),
  MultiModelConfig: refused('multi-model containers are not supported').optional(),
});

const CreateModelSchema = z.strictObject({
  ModelName: z.string().min(1).max(63).regex(MODEL_NAME),
  PrimaryContainer: ContainerSchema.optional(),
  Containers: z
    .array(ContainerSchema)
    .max(1, 'inference pipelines (more than one container) are not supported')
    .optional(),
  /** Only matters for pipelines, which are refused. */
  InferenceExecutionConfig: z.record(z.string(), z.unknown()).optional(),
  ExecutionRoleArn: z.string().min(20).max(2048).optional(),
  Tags: z
    .array(z.strictObject({ Key: z.string().min(1).max(128), Value: z.string().max(256) }))
    .max(50)
    .optional(),
  VpcConfig: z.record(z.string(), z.unknown()).optional(),
  EnableNetworkIsolation: z.boolean().optional(),
});

export type CreateModelRequest = z.infer<typeof CreateModelSchema>;
type Container = z.infer<typeof ContainerSchema>;

export interface ModelRecord {
  readonly request: CreateModelRequest;
  /** The one container, whichever member gave it. */
  readonly container: Container;
  readonly arn: string;
  readonly creationTime: string;
}

export class ModelRegistry {
  readonly #models = new Map<string, ModelRecord>();

  /**
   * @param createRefusal when set, CreateModel is refused with this reason (a deployed stack resolves
   * ModelName from the models its deployment declares; models created at run time are not built yet).
   */
  constructor(
    readonly identity: ApiIdentity,
    readonly createRefusal?: string,
  ) {}

  /** CreateModel: checks the request (every problem with its field path) and keeps the model. */
  create(body: Record<string, unknown>): { ModelArn: string } {
    if (this.createRefusal) throw new ApiError('ValidationException', this.createRefusal);
    const parsed = CreateModelSchema.safeParse(body);
    const problems: Problem[] = parsed.success
      ? []
      : parsed.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
    const given = [body.PrimaryContainer, ...(Array.isArray(body.Containers) ? body.Containers : [])].filter(
      (c) => c !== undefined,
    );
    if (given.length === 0)
      problems.push({
        path: 'PrimaryContainer',
        message: 'a model needs one container: give PrimaryContainer',
      });
    else if (given.length > 1 && body.PrimaryContainer !== undefined && Array.isArray(body.Containers))
      problems.push({ path: 'Containers', message: 'give PrimaryContainer or Containers, not both' });
    if (problems.length > 0 || !parsed.success)
      throw validationError(
        dedupe(problems),
        typeof body.ModelName === 'string' ? `Model "${body.ModelName}"` : undefined,
      );
    const request = parsed.data;
    const arn = modelArn(this.identity, request.ModelName);
    if (this.#models.has(request.ModelName))
      // The real service's words (the SageMaker Python SDK matches on them).
      throw new ApiError('ValidationException', `Cannot create already existing model "${arn}".`);
    const container = (request.PrimaryContainer ?? request.Containers?.[0])!;
    this.#models.set(request.ModelName, { request, container, arn, creationTime: new Date().toISOString() });
    return { ModelArn: arn };
  }

  get(name: string): ModelRecord | undefined {
    return this.#models.get(name);
  }

  /** The model, or SageMaker's ValidationException for a missing one. */
  require(name: unknown): ModelRecord {
    const found = typeof name === 'string' ? this.#models.get(name) : undefined;
    if (!found) throw this.notFound(name);
    return found;
  }

  notFound(name: unknown): ApiError {
    return new ApiError(
      'ValidationException',
      `Could not find model "${modelArn(this.identity, String(name))}".`,
    );
  }

  describe(body: Record<string, unknown>): Record<string, unknown> {
    const m = this.require(body.ModelName);
    const { Tags: _tags, ...rest } = m.request;
    return { ...rest, ModelArn: m.arn, CreationTime: epochSeconds(m.creationTime) };
  }

  delete(body: Record<string, unknown>): Record<string, never> {
    const m = this.require(body.ModelName);
    this.#models.delete(m.request.ModelName);
    return {};
  }

  list(q: ListQuery): Record<string, unknown> {
    const descending = (q.SortOrder ?? 'Descending') === 'Descending';
    const key = (m: ModelRecord) => (q.SortBy === 'Name' ? m.request.ModelName : m.creationTime);
    const all = [...this.#models.values()]
      .filter((m) => {
        const t = Date.parse(m.creationTime);
        if (q.NameContains && !m.request.ModelName.toLowerCase().includes(q.NameContains.toLowerCase()))
          return false;
        // ListModels' CreationTimeAfter is "greater than or equal" (its API reference), unlike the jobs' filter.
        if (q.CreationTimeAfter && t < q.CreationTimeAfter.getTime()) return false;
        if (q.CreationTimeBefore && t >= q.CreationTimeBefore.getTime()) return false;
        return true;
      })
      .sort((a, b) => {
        // Names are unique, so the name breaks ties and pages never overlap.
        const order = compare(key(a), key(b)) || compare(a.request.ModelName, b.request.ModelName);
        return descending ? -order : order;
      });
    const page = pageOf(all, q.MaxResults ?? LIST_MAX_RESULTS.default, q.NextToken);
    return {
      Models: page.items.map((m) => ({
        ModelName: m.request.ModelName,
        ModelArn: m.arn,
        CreationTime: epochSeconds(m.creationTime),
      })),
      ...(page.nextToken ? { NextToken: page.nextToken } : {}),
    };
  }
}

/** What a job run needs of a created model: its image, artifacts and environment. */
export function modelSpecOf(m: ModelRecord): ModelSpec {
  return {
    ...(m.container.Image ? { image: m.container.Image } : {}),
    ...(m.container.ModelDataUrl ? { modelDataUrl: m.container.ModelDataUrl } : {}),
    ...(m.container.Environment ? { environment: m.container.Environment } : {}),
  };
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.path}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
