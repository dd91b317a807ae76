import { parameterProblems, parseBatchStrategy } from '../contract/parameters';
import type { z } from 'zod';
import { parseJsonPath } from '../jsonpath/jsonpath';
import { joinUri, locationProblem, normalizeLocationUri, parseLocation, prefixBase } from '../storage/uri';
import { contentKind } from './content-types';
import { CapacityError, resolveCapacity } from './instances';
import type { Capacity, NormalizedJob } from '../contract/job';
import { formatPath, JobValidationError, type Problem } from './problems';
import { LIMITS, type TransformJobRequest, TransformJobRequestSchema } from './schema';

/** What validation needs to know beyond the request itself. */
export interface ValidationContext {
  /** ml.* types backed by EC2 capacity in this deployment. @default none */
  readonly enabledInstanceTypes?: readonly string[];
  /** Upper bound of InstanceCount. @default 100 */
  readonly maxInstanceCount?: number;
  /** Models this deployment knows; when given, ModelName must be one of them. */
  readonly modelNames?: readonly string[];
  /** Local runs accept file:// locations and run any catalog type on this machine. @default false */
  readonly local?: boolean;
}

export const EXTENSION_DEFAULTS = {
  CsvQuotedNewlines: false,
  CsvHeader: 'None',
  MaxFailedRecordsPerObject: 0,
  MaxFailedRecordsPercent: 0,
  ShardMinSizeInMB: 64,
  // SageMaker's container start-up health check may be given up to 3600 s
  // (ContainerStartupHealthCheckTimeoutInSeconds, 60–3600); a large model may need it.
  ModelStartupTimeoutInSeconds: 3600,
  JsonPathSliceEnd: 'Inclusive',
  // No earlier job: every object is processed (the lifecycle's validate stage checks a named one).
  ResumeFrom: undefined,
  SplitBatchOnFailure: false,
  KeepOutputsOnStop: false,
} as const;

/**
 * A deployed job's DataCaptureConfig destination must lie under one of the deployment's output
 * locations (`s3://bucket/prefix`, raw key prefixes as IAM grants them): the only places its Finalize
 * function may write the capture manifests. Checked by the plan stage, which is told the locations.
 */
export function captureDestinationProblem(
  job: Pick<NormalizedJob, 'DataCaptureConfig'>,
  outputRoots: readonly string[],
): Problem | undefined {
  const dest = job.DataCaptureConfig?.DestinationS3Uri;
  if (dest === undefined || outputRoots.some((root) => joinUri(dest, '').startsWith(root))) return undefined;
  return {
    path: 'DataCaptureConfig.DestinationS3Uri',
    message: `must lie under one of this deployment's output locations (${outputRoots.join(', ')}), the only places it may write the capture manifests (the construct's outputLocations); got "${dest}"`,
  };
}

/** Validates a CreateTransformJob request and returns the normalized job, or throws JobValidationError with every problem. */
export function validateRequest(input: unknown, ctx: ValidationContext = {}): NormalizedJob {
  const result = checkRequest(input, ctx);
  if (!result.ok) throw new JobValidationError(result.problems, jobNameOf(input));
  return result.job;
}

/**
 * A valid request, and the fields it sets that are accepted (so a request copied from SageMaker
 * validates unchanged) but change nothing here: `validate` warns about them, and the normalized job
 * lists them in `IgnoredFields`.
 */
export type CheckResult =
  | { ok: true; job: NormalizedJob; warnings: Problem[] }
  | { ok: false; problems: Problem[] };

/** Fields accepted and ignored, with the reason (docs/JOB.md, "Every request field"). */
const IGNORED_FIELDS: ReadonlyArray<readonly [path: string, reason: string]> = [
  [
    'TransformResources.VolumeKmsKeyId',
    "checked to be a KMS key, not used: a task's storage is encrypted per deployment, not per job. Fargate encrypts task ephemeral storage (AES-256) with an AWS owned key, or the cluster's customer managed key (ECS fargateEphemeralStorageKmsKeyId); EC2 capacity uses the EBS encryption of the deployment's launch template",
  ],
  [
    'TransformResources.TransformAmiVersion',
    "GPU tasks run on the deployment's ECS GPU-optimized AMI, whose NVIDIA driver the deployment chooses",
  ],
  ['ExperimentConfig', 'SageMaker Experiments has no counterpart here'],
];

function ignoredFields(r: Record<string, unknown>): Problem[] {
  const out: Problem[] = [];
  for (const [path, reason] of IGNORED_FIELDS) {
    let v: unknown = r;
    for (const k of path.split('.')) v = isObject(v) ? v[k] : undefined;
    if (v !== undefined && !(Array.isArray(v) && v.length === 0))
      out.push({ path, message: `accepted and ignored: ${reason}` });
  }
  return out;
}

export function checkRequest(input: unknown, ctx: ValidationContext = {}): CheckResult {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return {
      ok: false,
      problems: [
        { path: '', message: `must be a JSON object (a CreateTransformJob request), got ${describe(input)}` },
      ],
    };
  }
  const parsed = TransformJobRequestSchema.safeParse(input);
  const problems: Problem[] = parsed.success
    ? []
    : parsed.error.issues.flatMap((i) => issueProblems(i, input));
  // Cross-field rules run on whatever parsed, so a request with five problems reports all five.
  const capacity = crossFieldProblems(input as Partial<TransformJobRequest>, ctx, problems);
  if (problems.length > 0 || !parsed.success || !capacity) return { ok: false, problems: dedupe(problems) };
  const warnings = ignoredFields(input as Record<string, unknown>);
  const job = normalize(parsed.data, capacity);
  return { ok: true, job: warnings.length > 0 ? { ...job, IgnoredFields: warnings } : job, warnings };
}

function normalize(r: TransformJobRequest, capacity: Capacity): NormalizedJob {
  const ext = r.Extensions ?? {};
  return {
    TransformJobName: r.TransformJobName,
    ModelName: r.ModelName,
    // 0 means "ask the model" in SageMaker, the same as absent.
    ...(r.MaxConcurrentTransforms ? { MaxConcurrentTransforms: r.MaxConcurrentTransforms } : {}),
    ...(r.MaxPayloadInMB !== undefined ? { MaxPayloadInMB: r.MaxPayloadInMB } : {}),
    ...(r.BatchStrategy ? { BatchStrategy: parseBatchStrategy(r.BatchStrategy) } : {}),
    Environment: { ...(r.Environment ?? {}) },
    ModelClientConfig: {
      InvocationsTimeoutInSeconds: r.ModelClientConfig?.InvocationsTimeoutInSeconds ?? 600,
      InvocationsMaxRetries: r.ModelClientConfig?.InvocationsMaxRetries ?? 3,
    },
    TransformInput: {
      DataSource: {
        S3DataSource: {
          ...r.TransformInput.DataSource.S3DataSource,
          S3Uri: normalizeLocationUri(r.TransformInput.DataSource.S3DataSource.S3Uri),
        },
      },
      ...(r.TransformInput.ContentType !== undefined ? { ContentType: r.TransformInput.ContentType } : {}),
      CompressionType: r.TransformInput.CompressionType ?? 'None',
      SplitType: r.TransformInput.SplitType ?? 'None',
    },
    TransformOutput: {
      S3OutputPath: normalizeLocationUri(r.TransformOutput.S3OutputPath),
      ...(r.TransformOutput.Accept !== undefined ? { Accept: r.TransformOutput.Accept } : {}),
      AssembleWith: r.TransformOutput.AssembleWith ?? 'None',
      ...(r.TransformOutput.KmsKeyId ? { KmsKeyId: r.TransformOutput.KmsKeyId } : {}),
    },
    TransformResources: { ...r.TransformResources },
    DataProcessing: {
      InputFilter: r.DataProcessing?.InputFilter || '$',
      OutputFilter: r.DataProcessing?.OutputFilter || '$',
      JoinSource: r.DataProcessing?.JoinSource ?? 'None',
    },
    Tags: r.Tags ?? [],
    ...(r.DataCaptureConfig
      ? {
          DataCaptureConfig: {
            ...r.DataCaptureConfig,
            DestinationS3Uri: normalizeLocationUri(r.DataCaptureConfig.DestinationS3Uri),
          },
        }
      : {}),
    Extensions: { ...EXTENSION_DEFAULTS, ...ext },
    Capacity: capacity,
  };
}

/**
 * Whether the job's outputs land under its own input prefix, where a later run of the same request
 * would list them as input. SageMaker accepts any other output location, a bucket root or a prefix
 * beside the input included. Every object's key starts with the input prefix, and its output key is
 * the output location, then the object's key after the input's folder (its last `/`): so every
 * output key starts with `<output>/` plus the rest of the input prefix after that folder.
 */
function outputsFeedInput(inUri: string, outUri: string): boolean {
  const keyOf = (uri: string) => {
    const loc = parseLocation(uri, { allowFile: true });
    return loc.scheme === 's3'
      ? { where: `s3://${loc.bucket}`, key: loc.key }
      : { where: 'file', key: loc.path };
  };
  const input = keyOf(inUri);
  const output = keyOf(joinUri(outUri, ''));
  if (input.where !== output.where) return false;
  const folder = keyOf(prefixBase(inUri)).key;
  return (output.key + input.key.slice(folder.length)).startsWith(input.key);
}

/**
 * The four forms of a KMS key identifier that API_TransformResources lists for VolumeKmsKeyId: key
 * ID, key ARN, alias name, alias ARN (multi-Region key IDs start with `mrk-`).
 */
const KMS_KEY_ID =
  '(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|mrk-[0-9a-fA-F]{32})';
const KMS_ALIAS = 'alias/[a-zA-Z0-9/_-]{1,250}';
const KMS_ARN = 'arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:';
const KMS_KEY = new RegExp(
  `^(?:${KMS_KEY_ID}|${KMS_ALIAS}|${KMS_ARN}key/${KMS_KEY_ID}|${KMS_ARN}${KMS_ALIAS})$`,
);

function crossFieldProblems(
  r: Partial<TransformJobRequest>,
  ctx: ValidationContext,
  problems: Problem[],
): Capacity | undefined {
  const add = (path: string, message: string) => problems.push({ path, message });
  const input = objectOr(r.TransformInput);
  const output = objectOr(r.TransformOutput);
  const processing = objectOr(r.DataProcessing);
  const resources = objectOr(r.TransformResources);
  const source = objectOr(objectOr(input.DataSource).S3DataSource);
  const ext = objectOr(r.Extensions);
  const split = str(input.SplitType) ?? 'None';
  const assemble = str(output.AssembleWith) ?? 'None';
  const kind = contentKind(str(input.ContentType));

  const volumeKey = str(resources.VolumeKmsKeyId);
  if (volumeKey !== undefined && volumeKey !== '' && !KMS_KEY.test(volumeKey)) {
    add(
      'TransformResources.VolumeKmsKeyId',
      `must name a KMS key as SageMaker documents it: a key ID (1234abcd-12ab-34cd-56ef-1234567890ab), a key ARN (arn:aws:kms:<region>:<account>:key/<key ID>), an alias name (alias/<name>) or an alias ARN (arn:aws:kms:<region>:<account>:alias/<name>); got ${describe(volumeKey)}`,
    );
  }

  const payload = num(r.MaxPayloadInMB);
  for (const p of parameterProblems({
    ...(num(r.MaxConcurrentTransforms) !== undefined
      ? { MaxConcurrentTransforms: num(r.MaxConcurrentTransforms) }
      : {}),
    ...(payload !== undefined ? { MaxPayloadInMB: payload } : {}),
  }))
    add(p.field, p.message);
  if (payload === 0 && split !== 'None') {
    add(
      'MaxPayloadInMB',
      `0 (no payload limit: the whole object is streamed in one request) needs TransformInput.SplitType None; got SplitType ${split}`,
    );
  }

  const filtered = ['InputFilter', 'OutputFilter'].filter((f) => {
    const v = str(processing[f as 'InputFilter']);
    return v !== undefined && v !== '' && v !== '$';
  });
  if (payload === 0 && (filtered.length > 0 || processing.JoinSource === 'Input')) {
    const what = [
      ...filtered.map((f) => `DataProcessing.${f}`),
      ...(processing.JoinSource === 'Input' ? ['DataProcessing.JoinSource Input'] : []),
    ].join(' and ');
    add(
      'MaxPayloadInMB',
      `0 (no payload limit) streams each object to the model without reading it whole, so it cannot be used with ${what}, which need each record in memory; set MaxPayloadInMB to 1–100`,
    );
  }

  const envCount = isObject(r.Environment) ? Object.keys(r.Environment).length : 0;
  if (envCount > LIMITS.environmentMaxEntries) {
    add('Environment', `may have at most ${LIMITS.environmentMaxEntries} entries; got ${envCount}`);
  }

  // Locations: well formed, a manifest names an object, and the output never overlaps the input.
  const inUri = str(source.S3Uri);
  const outUri = str(output.S3OutputPath);
  const uriOpts = { allowFile: ctx.local === true };
  const inProblem = inUri === undefined ? undefined : locationProblem(inUri, uriOpts);
  const outProblem = outUri === undefined ? undefined : locationProblem(outUri, uriOpts);
  if (inUri !== undefined && inProblem)
    add('TransformInput.DataSource.S3DataSource.S3Uri', `${inProblem}; got "${inUri}"`);
  if (outUri !== undefined && outProblem)
    add('TransformOutput.S3OutputPath', `${outProblem}; got "${outUri}"`);
  const capture = objectOr(r.DataCaptureConfig);
  const captureUri = str(capture.DestinationS3Uri);
  const captureProblem = captureUri === undefined ? undefined : locationProblem(captureUri, uriOpts);
  if (captureUri !== undefined && captureProblem)
    add('DataCaptureConfig.DestinationS3Uri', `${captureProblem}; got "${captureUri}"`);
  // GenerateInferenceId appends to each output record, so the output must be records we can write to.
  if (capture.GenerateInferenceId === true) {
    const joined = processing.JoinSource === 'Input';
    const outType = joined ? input.ContentType : (output.Accept ?? input.ContentType);
    if (contentKind(str(outType)) === 'other') {
      add(
        'DataCaptureConfig.GenerateInferenceId',
        `true appends an inference ID and time to each output record, which SageMaker supports for CSV, JSON and JSON Lines output; the output content type (${joined ? 'TransformInput.ContentType, for JoinSource Input' : 'TransformOutput.Accept, else TransformInput.ContentType'}) is ${describe(outType)}`,
      );
    }
    if (split === 'RecordIO' || split === 'TFRecord') {
      add(
        'DataCaptureConfig.GenerateInferenceId',
        `true needs text records (TransformInput.SplitType Line or None); got SplitType ${split}`,
      );
    }
    if (payload === 0) {
      add(
        'MaxPayloadInMB',
        '0 (no payload limit) streams each object to the model without reading its output whole, so it cannot be used with DataCaptureConfig.GenerateInferenceId, which appends to each output record; set MaxPayloadInMB to 1–100',
      );
    }
  }
  if (inUri && !inProblem && source.S3DataType === 'ManifestFile' && inUri.endsWith('/')) {
    add(
      'TransformInput.DataSource.S3DataSource.S3Uri',
      `a ManifestFile location must name the manifest object, not a prefix; got "${inUri}"`,
    );
  }
  if (inUri && outUri && !inProblem && !outProblem && source.S3DataType !== 'ManifestFile') {
    if (outputsFeedInput(inUri, outUri)) {
      add(
        'TransformOutput.S3OutputPath',
        `must not put the outputs under the input prefix "${inUri}": an output is <S3OutputPath>/<the object's key after the input's last "/">.out and S3Prefix is a raw string prefix, so a later run of this job would read them as input; got "${outUri}". A bucket root or a prefix beside the input is fine`,
      );
    }
  }

  // JoinSource Input: only content we can join, and for CSV only line-by-line in and out.
  if (processing.JoinSource === 'Input') {
    if (kind === 'other') {
      add(
        'DataProcessing.JoinSource',
        `Input needs TransformInput.ContentType text/csv, application/json or application/jsonlines; got ${describe(input.ContentType)}`,
      );
    } else if (split !== 'Line' && split !== 'None') {
      add('DataProcessing.JoinSource', `Input needs SplitType Line or None; got ${split}`);
    }
    if (kind === 'csv' && (split !== 'Line' || assemble !== 'Line')) {
      add(
        'DataProcessing.JoinSource',
        `Input with CSV needs TransformInput.SplitType Line and TransformOutput.AssembleWith Line; got SplitType ${split}, AssembleWith ${assemble}`,
      );
    }
  }

  // Filters must parse as the JSONPath forms we support; CSV rows take index forms only.
  for (const field of ['InputFilter', 'OutputFilter'] as const) {
    const path = str(processing[field]);
    if (!path || path === '$') continue;
    // The output filter sees the model's answer (and the joined input): its kind follows Accept when set.
    const k =
      field === 'OutputFilter' && processing.JoinSource !== 'Input' && str(output.Accept)
        ? contentKind(str(output.Accept))
        : kind;
    if (k === 'other') {
      add(
        `DataProcessing.${field}`,
        `filters apply to CSV, JSON or JSON Lines records; ${field === 'InputFilter' ? 'TransformInput.ContentType' : 'the output content type'} is ${describe(field === 'InputFilter' ? input.ContentType : (output.Accept ?? input.ContentType))}`,
      );
      continue;
    }
    if (split === 'RecordIO' || split === 'TFRecord') {
      add(
        `DataProcessing.${field}`,
        `filters cannot apply to binary ${split} records; use SplitType Line or None`,
      );
      continue;
    }
    try {
      parseJsonPath(path, { csv: k === 'csv' });
    } catch (e) {
      add(`DataProcessing.${field}`, `${(e as Error).message}; got "${path}"`);
    }
  }

  // Extensions that only make sense for CSV lines.
  for (const field of ['CsvQuotedNewlines', 'CsvHeader'] as const) {
    const v = ext[field];
    if (v === undefined || v === false || v === 'None') continue;
    if (kind !== 'csv' || split !== 'Line') {
      add(
        `Extensions.${field}`,
        `applies to ContentType text/csv with SplitType Line; got ContentType ${describe(input.ContentType)}, SplitType ${split}`,
      );
    }
  }

  if (ext.ResumeFrom !== undefined && ext.ResumeFrom === r.TransformJobName) {
    add(
      'Extensions.ResumeFrom',
      `names this job itself ("${ext.ResumeFrom}"); name the earlier job to resume from`,
    );
  }

  // Instances: within the deployment's cap, and a type this deployment can run.
  const count = num(resources.InstanceCount);
  const maxCount = ctx.maxInstanceCount ?? LIMITS.instanceCountMax;
  if (count !== undefined && Number.isInteger(count) && count > maxCount) {
    add('TransformResources.InstanceCount', `must be at most ${maxCount} in this deployment; got ${count}`);
  }
  if (ctx.modelNames && typeof r.ModelName === 'string' && !ctx.modelNames.includes(r.ModelName)) {
    add(
      'ModelName',
      `no model named "${r.ModelName}" in this deployment; known models: ${ctx.modelNames.length ? ctx.modelNames.join(', ') : '(none)'}`,
    );
  }
  const type = str(resources.InstanceType);
  if (type === undefined) return undefined;
  if (ctx.local) {
    return resolveLocal(type, add);
  }
  try {
    return resolveCapacity(type, ctx.enabledInstanceTypes ?? []);
  } catch (e) {
    if (!(e instanceof CapacityError)) throw e;
    add('TransformResources.InstanceType', e.message);
    return undefined;
  }
}

function resolveLocal(type: string, add: (p: string, m: string) => void): Capacity | undefined {
  try {
    // Any catalog type runs locally; an unknown one is still an error so a typo is caught before deploy.
    resolveCapacity(type, [type]);
    return { kind: 'local' };
  } catch (e) {
    add('TransformResources.InstanceType', (e as Error).message);
    return undefined;
  }
}

// ---- zod issues to problems a user can act on ----

const PATTERN_HINTS: Record<string, string> = {
  TransformJobName: 'letters, digits and hyphens, starting and ending with a letter or digit',
  ModelName: 'letters, digits and hyphens, starting and ending with a letter or digit',
  InstanceType: 'an ml.* instance type such as ml.m5.xlarge',
  Key: 'letters, digits, spaces and _ . : / = + - @',
  Value: 'letters, digits, spaces and _ . : / = + - @',
};

function issueProblems(issue: z.core.$ZodIssue, input: unknown): Problem[] {
  const path = formatPath(issue.path);
  const given = valueAt(input, issue.path);
  const leaf = String(issue.path[issue.path.length - 1] ?? '');
  switch (issue.code) {
    case 'invalid_type':
      if (given === undefined) return [{ path, message: 'is required' }];
      return [{ path, message: `must be ${article(issue.expected)}; got ${describe(given)}` }];
    case 'too_small':
    case 'too_big': {
      const bound = issue.code === 'too_small' ? 'at least' : 'at most';
      const limit = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      if (issue.origin === 'string') {
        const len = typeof given === 'string' ? given.length : 0;
        if (issue.code === 'too_small' && Number(limit) === 1)
          return [{ path, message: 'must not be empty' }];
        return [{ path, message: `must be ${bound} ${limit} characters long; got ${len}` }];
      }
      if (issue.origin === 'array') {
        return [
          {
            path,
            message: `must have ${bound} ${limit} entries; got ${Array.isArray(given) ? given.length : '?'}`,
          },
        ];
      }
      return [{ path, message: `must be ${bound} ${limit}; got ${describe(given)}` }];
    }
    case 'invalid_value':
      return [
        {
          path,
          message: `must be one of ${issue.values.map((v) => String(v)).join(', ')}; got ${describe(given)}`,
        },
      ];
    case 'invalid_format':
      return [
        {
          path,
          message: `must be ${PATTERN_HINTS[leaf] ?? `text matching ${(issue as { pattern?: string }).pattern ?? issue.format}`}; got ${describe(given)}`,
        },
      ];
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const known = knownKeysAt(issue.path);
        const near = nearest(key, known);
        return {
          path: formatPath([...issue.path, key]),
          message: `is not a field here${near ? ` (did you mean ${near}?)` : ''}; ${issue.path.length === 0 ? 'extension fields go under Extensions' : `allowed: ${known.join(', ')}`}`,
        };
      });
    case 'invalid_key': {
      const envPath = issue.path.slice(0, -1);
      const key = String(issue.path[issue.path.length - 1]);
      return [
        {
          path: formatPath([...envPath, key]),
          message: `environment variable names must start with a letter or _ and contain only letters, digits and _ (at most 1024); got ${JSON.stringify(key)}`,
        },
      ];
    }
    default:
      return [{ path, message: issue.message }];
  }
}

function knownKeysAt(path: readonly PropertyKey[]): string[] {
  // Walk the schema's shape along the path to list the keys allowed there.
  // biome-ignore lint/suspicious/noExplicitAny: zod's internal shape is untyped here.
  let schema: any = TransformJobRequestSchema;
  for (const part of path) {
    while (schema?._zod?.def?.innerType) schema = schema._zod.def.innerType;
    if (typeof part === 'number') schema = schema?._zod?.def?.element;
    else schema = schema?.shape?.[part];
  }
  while (schema?._zod?.def?.innerType) schema = schema._zod.def.innerType;
  return schema?.shape ? Object.keys(schema.shape) : [];
}

/** The known key closest to a misspelt one (edit distance ≤ 2, or a case-insensitive match). */
function nearest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : editDistance(k, key);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.path}\0${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = input;
  for (const part of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[part];
  }
  return v;
}

/** A short, safe rendering of a user's value for an error message. */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string')
    return v.length > 80 ? `${JSON.stringify(v.slice(0, 77))}… (${v.length} characters)` : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `a list of ${v.length}`;
  return 'an object';
}

function article(expected: string): string {
  const words: Record<string, string> = {
    int: 'a whole number',
    number: 'a number',
    string: 'a string',
    boolean: 'true or false',
    object: 'an object',
    array: 'a list',
    record: 'an object',
  };
  return words[expected] ?? expected;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const objectOr = (v: unknown): Record<string, unknown> => (isObject(v) ? v : {});
const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const jobNameOf = (v: unknown) =>
  isObject(v) && typeof v.TransformJobName === 'string' ? v.TransformJobName : undefined;
