import { z } from 'zod';
import { LIST_MAX_RESULTS } from '../client/defaults';
import { formatPath, type Problem } from '../job/problems';
import { MODEL_NAME } from '../job/schema';
import type { CreatedModel, ModelSpec } from '../contract/deployment';
import { createdModelUri } from '../contract/layout';
import { imageAllowed } from '../deploy/model-images';
import type { Storage } from '../storage/storage';
import { readJson, readJsonIfExists } from '../storage/json';
import { type ApiIdentity, modelArn } from './arns';
import { pageOf, type ListQuery } from './listing';
import { ApiError, epochSeconds, validationError } from './protocol';

/**
 * Models created with CreateModel, kept by the server (in memory: a local server's models live as
 * long as it does; on a deployed stack in its models location, where Validate finds them). Field names, limits and messages are SageMaker's (botocore's service model and
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

/**
 * Where the server keeps created models: in memory (`--local`: they live as long as the server), or
 * in a deployed stack's models location (`StoredModels`), where Validate reads them.
 */
export interface ModelStore {
  /** Keeps the model unless one of that name is kept, atomically: false then. */
  add(model: CreatedModel): Promise<boolean>;
  get(name: string): Promise<CreatedModel | undefined>;
  remove(name: string): Promise<void>;
  all(): Promise<CreatedModel[]>;
}

export class MemoryModels implements ModelStore {
  readonly #models = new Map<string, CreatedModel>();
  async add(model: CreatedModel): Promise<boolean> {
    if (this.#models.has(model.ModelName)) return false;
    this.#models.set(model.ModelName, model);
    return true;
  }
  async get(name: string): Promise<CreatedModel | undefined> {
    return this.#models.get(name);
  }
  async remove(name: string): Promise<void> {
    this.#models.delete(name);
  }
  async all(): Promise<CreatedModel[]> {
    return [...this.#models.values()];
  }
}

/**
 * Models kept as `<root><ModelName>.json` (a deployed stack's `s3://<work bucket>/models/`), written
 * with `If-None-Match: *` so that of two CreateModel calls with one name exactly one succeeds.
 */
export class StoredModels implements ModelStore {
  constructor(
    private readonly storage: Storage,
    private readonly root: string,
  ) {}
  async add(model: CreatedModel): Promise<boolean> {
    return this.storage.putIfAbsent(
      createdModelUri(this.root, model.ModelName),
      `${JSON.stringify(model)}\n`,
      {
        contentType: 'application/json',
      },
    );
  }
  async get(name: string): Promise<CreatedModel | undefined> {
    if (!MODEL_NAME.test(name)) return undefined;
    return readJsonIfExists<CreatedModel>(this.storage, createdModelUri(this.root, name));
  }
  async remove(name: string): Promise<void> {
    await this.storage.delete(createdModelUri(this.root, name));
  }
  async all(): Promise<CreatedModel[]> {
    const models: CreatedModel[] = [];
    for await (const o of this.storage.list(this.root)) {
      if (o.uri.endsWith('.json')) models.push(await readJson<CreatedModel>(this.storage, o.uri));
    }
    return models;
  }
}

export interface ModelRegistryOptions {
  /** @default in memory */
  readonly store?: ModelStore;
  /** When set, CreateModel is refused with this reason (a deployed stack whose models location is unknown). */
  readonly createRefusal?: string;
  /**
   * Image patterns a created model may use (src/deploy/model-images.ts); a container must then name
   * its Image. @default any image, and none needed (local runs serve example models by name)
   */
  readonly allowedImages?: readonly string[];
}

export class ModelRegistry {
  readonly #store: ModelStore;

  constructor(
    readonly identity: ApiIdentity,
    readonly options: ModelRegistryOptions = {},
  ) {
    this.#store = options.store ?? new MemoryModels();
  }

  /** CreateModel: checks the request (every problem with its field path) and keeps the model. */
  async create(body: Record<string, unknown>): Promise<{ ModelArn: string }> {
    if (this.options.createRefusal) throw new ApiError('ValidationException', this.options.createRefusal);
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
    if (parsed.success) problems.push(...this.imageProblems(parsed.data));
    if (problems.length > 0 || !parsed.success)
      throw validationError(
        dedupe(problems),
        typeof body.ModelName === 'string' ? `Model "${body.ModelName}"` : undefined,
      );
    const request = parsed.data;
    const arn = modelArn(this.identity, request.ModelName);
    const container = (request.PrimaryContainer ?? request.Containers?.[0])!;
    const model: CreatedModel = {
      ModelName: request.ModelName,
      Image: container.Image ?? '',
      ...(container.ModelDataUrl ? { ModelDataUrl: container.ModelDataUrl } : {}),
      ...(container.Environment ? { Environment: container.Environment } : {}),
      ModelArn: arn,
      CreationTime: new Date().toISOString(),
      request,
    };
    if (!(await this.#store.add(model)))
      // The real service's words (the SageMaker Python SDK matches on them).
      throw new ApiError('ValidationException', `Cannot create already existing model "${arn}".`);
    return { ModelArn: arn };
  }

  /** With an image policy (a deployed stack): the container's Image is required and must be allowed. */
  private imageProblems(request: CreateModelRequest): Problem[] {
    const allowed = this.options.allowedImages;
    if (!allowed) return [];
    const path = request.PrimaryContainer ? 'PrimaryContainer.Image' : 'Containers[0].Image';
    const image = (request.PrimaryContainer ?? request.Containers?.[0])?.Image;
    if (!image) return [{ path, message: 'a model on a deployed stack needs its container image' }];
    if (imageAllowed(image, allowed)) return [];
    return [
      {
        path,
        message: `the image ${JSON.stringify(image)} is not one this deployment allows created models to use (allowed: ${allowed.join(', ') || 'none'}; the construct's createdModelImages)`,
      },
    ];
  }

  get(name: string): Promise<CreatedModel | undefined> {
    return this.#store.get(name);
  }

  /** The model, or SageMaker's ValidationException for a missing one. */
  async require(name: unknown): Promise<CreatedModel> {
    const found = typeof name === 'string' ? await this.#store.get(name) : undefined;
    if (!found) throw this.notFound(name);
    return found;
  }

  notFound(name: unknown): ApiError {
    return new ApiError(
      'ValidationException',
      `Could not find model "${modelArn(this.identity, String(name))}".`,
    );
  }

  async describe(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const m = await this.require(body.ModelName);
    const { Tags: _tags, ...rest } = m.request;
    return { ...rest, ModelArn: m.ModelArn, CreationTime: epochSeconds(m.CreationTime) };
  }

  async delete(body: Record<string, unknown>): Promise<Record<string, never>> {
    const m = await this.require(body.ModelName);
    await this.#store.remove(m.ModelName);
    return {};
  }

  async list(q: ListQuery): Promise<Record<string, unknown>> {
    const descending = (q.SortOrder ?? 'Descending') === 'Descending';
    const key = (m: CreatedModel) => (q.SortBy === 'Name' ? m.ModelName : m.CreationTime);
    const all = (await this.#store.all())
      .filter((m) => {
        const t = Date.parse(m.CreationTime);
        if (q.NameContains && !m.ModelName.toLowerCase().includes(q.NameContains.toLowerCase())) return false;
        // ListModels' CreationTimeAfter is "greater than or equal" (its API reference), unlike the jobs' filter.
        if (q.CreationTimeAfter && t < q.CreationTimeAfter.getTime()) return false;
        if (q.CreationTimeBefore && t >= q.CreationTimeBefore.getTime()) return false;
        return true;
      })
      .sort((a, b) => {
        // Names are unique, so the name breaks ties and pages never overlap.
        const order = compare(key(a), key(b)) || compare(a.ModelName, b.ModelName);
        return descending ? -order : order;
      });
    const page = pageOf(all, q.MaxResults ?? LIST_MAX_RESULTS.default, q.NextToken);
    return {
      Models: page.items.map((m) => ({
        ModelName: m.ModelName,
        ModelArn: m.ModelArn,
        CreationTime: epochSeconds(m.CreationTime),
      })),
      ...(page.nextToken ? { NextToken: page.nextToken } : {}),
    };
  }
}

/** What a job run needs of a created model: its image, artifacts and environment. */
export function modelSpecOf(m: CreatedModel): ModelSpec {
  return {
    ...(m.Image ? { image: m.Image } : {}),
    ...(m.ModelDataUrl ? { modelDataUrl: m.ModelDataUrl } : {}),
    ...(m.Environment ? { environment: m.Environment } : {}),
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
