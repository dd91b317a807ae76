import { describe, expect, it } from 'vitest';
import seed from './seed-request.json';
import {
  INSTANCE_CATALOG,
  INSTANCE_TYPES,
  fargateSizeFor,
  isFargateType,
  resolveCapacity,
  FARGATE_SIZES,
} from '../../src/job/instances';
import { JobValidationError } from '../../src/job/problems';
import { checkRequest, validateRequest } from '../../src/job/validate';
import { jobRequestJsonSchema } from '../../src/job/schema';

const ALL_EC2 = Object.keys(INSTANCE_CATALOG);
const ctx = { enabledInstanceTypes: ALL_EC2 };

/** A deep copy of the seed request with `patch` applied at a dotted path (undefined deletes). */
function withField(path: string, value: unknown): Record<string, unknown> {
  const req = structuredClone(seed) as Record<string, unknown>;
  const parts = path.split('.');
  let obj = req as Record<string, unknown>;
  for (const part of parts.slice(0, -1)) {
    obj[part] ??= {};
    obj = obj[part] as Record<string, unknown>;
  }
  const last = parts[parts.length - 1]!;
  if (value === undefined) delete obj[last];
  else obj[last] = value;
  return req;
}

function problemsOf(req: unknown, c = ctx) {
  const r = checkRequest(req, c);
  if (r.ok) throw new Error('expected the request to be rejected');
  return r.problems;
}

describe('a SageMaker CreateTransformJob request', () => {
  it('validates unchanged (the boto3 shape from the seed documents)', () => {
    const job = validateRequest(seed, ctx);
    expect(job.TransformJobName).toBe('reviews-batch-2025-09-11');
    expect(job.BatchStrategy).toBe('MultiRecord');
    expect(job.Capacity).toEqual({ kind: 'fargate', cpu: 4096, memoryMiB: 16384 });
  });

  it('fills every SageMaker default explicitly', () => {
    const job = validateRequest(withField('Environment', undefined), ctx);
    expect(job.ModelClientConfig).toEqual({ InvocationsTimeoutInSeconds: 600, InvocationsMaxRetries: 3 });
    expect(job.TransformOutput.AssembleWith).toBe('None');
    expect(job.DataProcessing).toEqual({ InputFilter: '$', OutputFilter: '$', JoinSource: 'None' });
    expect(job.Environment).toEqual({});
    expect(job.Tags).toEqual([]);
    expect(job.TransformOutput).not.toHaveProperty('Accept');
    expect(job.Extensions).toEqual({
      CsvQuotedNewlines: false,
      CsvHeader: 'None',
      MaxFailedRecordsPerObject: 0,
      MaxFailedRecordsPercent: 0,
      ShardMinSizeInMB: 64,
      ModelStartupTimeoutInSeconds: 3600,
      JsonPathSliceEnd: 'Inclusive',
      SplitBatchOnFailure: false,
      KeepOutputsOnStop: false,
    });
  });

  it('defaults CompressionType and SplitType to None', () => {
    const req = withField('TransformInput.SplitType', undefined);
    delete (req.TransformInput as Record<string, unknown>).CompressionType;
    const job = validateRequest(req, ctx);
    expect(job.TransformInput.SplitType).toBe('None');
    expect(job.TransformInput.CompressionType).toBe('None');
  });

  it.each([
    ['MULTI_RECORD', 'MultiRecord'],
    ['MultiRecord', 'MultiRecord'],
    ['SINGLE_RECORD', 'SingleRecord'],
    ['SingleRecord', 'SingleRecord'],
  ])('normalizes BatchStrategy %s to %s', (given, normalized) => {
    expect(validateRequest(withField('BatchStrategy', given), ctx).BatchStrategy).toBe(normalized);
  });

  it('leaves the model-negotiated fields unset when the request does not set them (ask /execution-parameters)', () => {
    const req = withField('MaxConcurrentTransforms', 0);
    delete req.BatchStrategy;
    delete req.MaxPayloadInMB;
    const job = validateRequest(req, ctx);
    expect(job).not.toHaveProperty('MaxConcurrentTransforms');
    expect(job).not.toHaveProperty('BatchStrategy');
    expect(job).not.toHaveProperty('MaxPayloadInMB');
  });

  it('keeps MaxPayloadInMB 0 (no limit) with SplitType None', () => {
    const req = withField('TransformInput.SplitType', 'None');
    req.MaxPayloadInMB = 0;
    expect(validateRequest(req, ctx).MaxPayloadInMB).toBe(0);
  });

  it('accepts the extension fields and the SageMaker fields it ignores', () => {
    const req = withField('Extensions', {
      CsvHeader: 'Repeat',
      CsvQuotedNewlines: true,
      MaxFailedRecordsPerObject: 5,
    });
    req.ExperimentConfig = { ExperimentName: 'e' };
    const job = validateRequest(req, ctx);
    expect(job.Extensions.CsvHeader).toBe('Repeat');
    expect(job.Extensions.MaxFailedRecordsPerObject).toBe(5);
  });

  it('reports every problem of a request with five problems, each with its path', () => {
    // biome-ignore lint/suspicious/noExplicitAny: the test breaks requests field by field on purpose
    const req = structuredClone(seed) as Record<string, any>;
    req.TransformJobName = 'bad_name';
    req.MaxPayloadInMB = 101;
    req.TransformInput.SplitType = 'Lines';
    req.TransformOutput.S3OutputPath = 's3://my-ml-bucket/batch-input/out/';
    req.TransformResources.InstanceType = 'ml.z9.huge';
    const paths = problemsOf(req).map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'TransformJobName',
        'MaxPayloadInMB',
        'TransformInput.SplitType',
        'TransformOutput.S3OutputPath',
        'TransformResources.InstanceType',
      ]),
    );
    expect(paths).toHaveLength(5);
  });

  it('throws JobValidationError whose message lists each problem on its own line', () => {
    try {
      validateRequest(withField('ModelName', 'a_b'), ctx);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(JobValidationError);
      expect((e as Error).message).toMatch(
        /Transform job "reviews-batch-2025-09-11" has 1 problem:\n {2}- ModelName: /,
      );
    }
  });

  it('exports the request schema as JSON Schema', () => {
    const schema = jobRequestJsonSchema();
    expect(schema.type).toBe('object');
    expect(Object.keys(schema.properties as object)).toContain('TransformInput');
    expect(schema.required).toEqual(
      expect.arrayContaining([
        'TransformJobName',
        'ModelName',
        'TransformInput',
        'TransformOutput',
        'TransformResources',
      ]),
    );
  });
});

const longName = 'a'.repeat(64);
const manyEnv = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`K${i}`, 'v']));
const manyTags = Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }));

/** [what is wrong, field path to set, value (undefined deletes), expected problem path, message fragment] */
const INVALID: ReadonlyArray<readonly [string, string, unknown, string, RegExp]> = [
  ['missing job name', 'TransformJobName', undefined, 'TransformJobName', /required/],
  ['empty job name', 'TransformJobName', '', 'TransformJobName', /empty/],
  ['job name too long', 'TransformJobName', longName, 'TransformJobName', /at most 63/],
  [
    'job name with underscore',
    'TransformJobName',
    'my_job',
    'TransformJobName',
    /letters, digits and hyphens/,
  ],
  ['job name starting with hyphen', 'TransformJobName', '-job', 'TransformJobName', /letters, digits/],
  ['job name ending with hyphen', 'TransformJobName', 'job-', 'TransformJobName', /letters, digits/],
  ['job name not a string', 'TransformJobName', 42, 'TransformJobName', /must be a string; got 42/],
  ['missing model name', 'ModelName', undefined, 'ModelName', /required/],
  ['model name with dot', 'ModelName', 'my.model', 'ModelName', /letters, digits/],
  ['model name too long', 'ModelName', longName, 'ModelName', /at most 63/],
  [
    'negative MaxConcurrentTransforms',
    'MaxConcurrentTransforms',
    -1,
    'MaxConcurrentTransforms',
    /at least 0/,
  ],
  [
    'fractional MaxConcurrentTransforms',
    'MaxConcurrentTransforms',
    1.5,
    'MaxConcurrentTransforms',
    /whole number/,
  ],
  [
    'MaxConcurrentTransforms as string',
    'MaxConcurrentTransforms',
    '4',
    'MaxConcurrentTransforms',
    /must be a number; got "4"/,
  ],
  ['MaxPayloadInMB above 100', 'MaxPayloadInMB', 101, 'MaxPayloadInMB', /at most 100/],
  ['negative MaxPayloadInMB', 'MaxPayloadInMB', -6, 'MaxPayloadInMB', /at least 0/],
  [
    'MaxPayloadInMB 0 with SplitType Line',
    'MaxPayloadInMB',
    0,
    'MaxPayloadInMB',
    /needs TransformInput.SplitType None/,
  ],
  [
    'concurrency × payload above 100',
    'MaxConcurrentTransforms',
    20,
    'MaxConcurrentTransforms',
    /20 × 6 = 120/,
  ],
  ['unknown BatchStrategy', 'BatchStrategy', 'Multi', 'BatchStrategy', /one of SingleRecord, MultiRecord/],
  ['Environment not an object', 'Environment', 'A=B', 'Environment', /an object/],
  [
    'Environment key starting with digit',
    'Environment',
    { '1X': 'v' },
    'Environment["1X"]',
    /must start with a letter/,
  ],
  [
    'Environment key with dash',
    'Environment',
    { 'MY-VAR': 'v' },
    'Environment["MY-VAR"]',
    /letters, digits and _/,
  ],
  ['Environment value too long', 'Environment', { K: 'x'.repeat(10241) }, 'Environment.K', /at most 10240/],
  ['Environment value not a string', 'Environment', { K: 1 }, 'Environment.K', /string/],
  ['Environment with 17 entries', 'Environment', manyEnv, 'Environment', /at most 16 entries; got 17/],
  [
    'invocation timeout 0',
    'ModelClientConfig.InvocationsTimeoutInSeconds',
    0,
    'ModelClientConfig.InvocationsTimeoutInSeconds',
    /at least 1/,
  ],
  [
    'invocation timeout above 3600',
    'ModelClientConfig.InvocationsTimeoutInSeconds',
    3601,
    'ModelClientConfig.InvocationsTimeoutInSeconds',
    /at most 3600/,
  ],
  [
    'invocation retries above 3',
    'ModelClientConfig.InvocationsMaxRetries',
    4,
    'ModelClientConfig.InvocationsMaxRetries',
    /at most 3/,
  ],
  [
    'unknown ModelClientConfig field',
    'ModelClientConfig.Timeout',
    3,
    'ModelClientConfig.Timeout',
    /not a field here/,
  ],
  ['missing TransformInput', 'TransformInput', undefined, 'TransformInput', /required/],
  [
    'missing S3Uri',
    'TransformInput.DataSource.S3DataSource.S3Uri',
    undefined,
    'TransformInput.DataSource.S3DataSource.S3Uri',
    /required/,
  ],
  [
    'S3Uri an https:// URL that is not S3',
    'TransformInput.DataSource.S3DataSource.S3Uri',
    'https://bucket/x',
    'TransformInput.DataSource.S3DataSource.S3Uri',
    /must be an S3 URL .* got host "bucket"/,
  ],
  [
    'S3Uri neither s3:// nor https://',
    'TransformInput.DataSource.S3DataSource.S3Uri',
    'ftp://bucket/x',
    'TransformInput.DataSource.S3DataSource.S3Uri',
    /expected an s3:\/\/bucket\/prefix URI/,
  ],
  [
    'TransformAmiVersion not one SageMaker documents',
    'TransformResources.TransformAmiVersion',
    'al2-ami-sagemaker-batch-gpu-999',
    'TransformResources.TransformAmiVersion',
    /must be one of al2-ami-sagemaker-batch-gpu-470, al2-ami-sagemaker-batch-gpu-535/,
  ],
  [
    'S3Uri with bad bucket',
    'TransformInput.DataSource.S3DataSource.S3Uri',
    's3://My_Bucket/x',
    'TransformInput.DataSource.S3DataSource.S3Uri',
    /not a valid S3 bucket name/,
  ],
  [
    'S3Uri too long',
    'TransformInput.DataSource.S3DataSource.S3Uri',
    `s3://bucket/${'k'.repeat(1020)}`,
    'TransformInput.DataSource.S3DataSource.S3Uri',
    /at most 1024/,
  ],
  [
    'file:// input outside a local run',
    'TransformInput.DataSource.S3DataSource.S3Uri',
    'file:///data/in/',
    'TransformInput.DataSource.S3DataSource.S3Uri',
    /only allowed in local runs/,
  ],
  [
    'unknown S3DataType',
    'TransformInput.DataSource.S3DataSource.S3DataType',
    'AugmentedManifestFile',
    'TransformInput.DataSource.S3DataSource.S3DataType',
    /S3Prefix, ManifestFile/,
  ],
  [
    'ContentType too long',
    'TransformInput.ContentType',
    'x'.repeat(257),
    'TransformInput.ContentType',
    /at most 256/,
  ],
  [
    'unknown CompressionType',
    'TransformInput.CompressionType',
    'Zip',
    'TransformInput.CompressionType',
    /None, Gzip/,
  ],
  [
    'unknown SplitType',
    'TransformInput.SplitType',
    'Lines',
    'TransformInput.SplitType',
    /None, Line, RecordIO, TFRecord/,
  ],
  [
    'misspelt TransformInput field',
    'TransformInput.SplitTyp',
    'Line',
    'TransformInput.SplitTyp',
    /did you mean SplitType/,
  ],
  ['missing TransformOutput', 'TransformOutput', undefined, 'TransformOutput', /required/],
  [
    'output inside the input prefix',
    'TransformOutput.S3OutputPath',
    's3://my-ml-bucket/batch-input/out/',
    'TransformOutput.S3OutputPath',
    /must not put the outputs under the input prefix/,
  ],
  [
    'output equal to the input prefix',
    'TransformOutput.S3OutputPath',
    's3://my-ml-bucket/batch-input/',
    'TransformOutput.S3OutputPath',
    /must not put the outputs under the input prefix/,
  ],
  ['output missing', 'TransformOutput.S3OutputPath', undefined, 'TransformOutput.S3OutputPath', /required/],
  [
    'output not an S3 URI',
    'TransformOutput.S3OutputPath',
    'bucket/out',
    'TransformOutput.S3OutputPath',
    /s3:\/\/bucket/,
  ],
  [
    'unknown AssembleWith',
    'TransformOutput.AssembleWith',
    'Newline',
    'TransformOutput.AssembleWith',
    /None, Line/,
  ],
  ['Accept too long', 'TransformOutput.Accept', 'a'.repeat(257), 'TransformOutput.Accept', /at most 256/],
  ['missing TransformResources', 'TransformResources', undefined, 'TransformResources', /required/],
  [
    'instance type not ml.*',
    'TransformResources.InstanceType',
    'm5.xlarge',
    'TransformResources.InstanceType',
    /an ml\.\* instance type/,
  ],
  [
    'unknown instance type',
    'TransformResources.InstanceType',
    'ml.m5.huge',
    'TransformResources.InstanceType',
    /unknown instance type "ml.m5.huge"; available:/,
  ],
  [
    'InstanceCount 0',
    'TransformResources.InstanceCount',
    0,
    'TransformResources.InstanceCount',
    /at least 1/,
  ],
  [
    'InstanceCount above the limit',
    'TransformResources.InstanceCount',
    101,
    'TransformResources.InstanceCount',
    /at most 100 in this deployment/,
  ],
  [
    'InstanceCount fractional',
    'TransformResources.InstanceCount',
    2.5,
    'TransformResources.InstanceCount',
    /whole number/,
  ],
  ['unknown JoinSource', 'DataProcessing.JoinSource', 'Output', 'DataProcessing.JoinSource', /None, Input/],
  [
    'InputFilter too long',
    'DataProcessing.InputFilter',
    `$[${'1,'.repeat(40)}2]`,
    'DataProcessing.InputFilter',
    /at most 63/,
  ],
  [
    'CSV InputFilter with a name',
    'DataProcessing.InputFilter',
    '$.features',
    'DataProcessing.InputFilter',
    /got "\$.features"/,
  ],
  [
    'OutputFilter not JSONPath',
    'DataProcessing.OutputFilter',
    'features',
    'DataProcessing.OutputFilter',
    /got "features"/,
  ],
  ['too many tags', 'Tags', manyTags, 'Tags', /at most 50 entries; got 51/],
  ['tag key empty', 'Tags', [{ Key: '', Value: 'v' }], 'Tags[0].Key', /empty/],
  [
    'tag key with bad character',
    'Tags',
    [{ Key: 'a$b', Value: 'v' }],
    'Tags[0].Key',
    /letters, digits, spaces/,
  ],
  ['tag value too long', 'Tags', [{ Key: 'k', Value: 'v'.repeat(257) }], 'Tags[0].Value', /at most 256/],
  ['tag without value', 'Tags', [{ Key: 'k' }], 'Tags[0].Value', /required/],
  ['unknown top-level field', 'TransformJobname', 'x', 'TransformJobname', /did you mean TransformJobName/],
  ['unknown extension', 'Extensions.CsvHeaders', 'Skip', 'Extensions.CsvHeaders', /did you mean CsvHeader/],
  [
    'MaxFailedRecordsPercent above 100',
    'Extensions.MaxFailedRecordsPercent',
    150,
    'Extensions.MaxFailedRecordsPercent',
    /at most 100/,
  ],
  [
    'ResumeFrom that is not a job name',
    'Extensions.ResumeFrom',
    'no_such job',
    'Extensions.ResumeFrom',
    /must be text matching/,
  ],
  [
    'ModelStartupTimeoutInSeconds 0',
    'Extensions.ModelStartupTimeoutInSeconds',
    0,
    'Extensions.ModelStartupTimeoutInSeconds',
    /at least 1/,
  ],
];

describe('an invalid request is rejected with the field path', () => {
  it.each(INVALID)('%s', (_what, field, value, path, message) => {
    const problems = problemsOf(withField(field, value));
    const match = problems.find((p) => p.path === path);
    expect(match, `problems: ${JSON.stringify(problems)}`).toBeDefined();
    expect(match!.message).toMatch(message);
  });

  // biome-ignore lint/suspicious/noExplicitAny: the test breaks requests field by field on purpose
  it.each<[string, (r: Record<string, any>) => void, string, RegExp]>([
    [
      'JoinSource Input with an unjoinable content type',
      (r) => {
        r.TransformInput.ContentType = 'image/jpeg';
        r.DataProcessing = { JoinSource: 'Input' };
      },
      'DataProcessing.JoinSource',
      /text\/csv, application\/json or application\/jsonlines; got "image\/jpeg"/,
    ],
    [
      'JoinSource Input for CSV without AssembleWith Line',
      (r) => {
        r.DataProcessing = { JoinSource: 'Input' };
      },
      'DataProcessing.JoinSource',
      /AssembleWith Line; got SplitType Line, AssembleWith None/,
    ],
    [
      'JoinSource Input with RecordIO',
      (r) => {
        r.TransformInput.ContentType = 'application/json';
        r.TransformInput.SplitType = 'RecordIO';
        r.DataProcessing = { JoinSource: 'Input' };
      },
      'DataProcessing.JoinSource',
      /SplitType Line or None; got RecordIO/,
    ],
    [
      'a filter on binary TFRecord records',
      (r) => {
        r.TransformInput.ContentType = 'application/json';
        r.TransformInput.SplitType = 'TFRecord';
        r.DataProcessing = { InputFilter: '$.a' };
      },
      'DataProcessing.InputFilter',
      /binary TFRecord/,
    ],
    [
      'a filter on content that is not CSV or JSON',
      (r) => {
        r.TransformInput.ContentType = 'application/x-image';
        r.DataProcessing = { InputFilter: '$[0]' };
      },
      'DataProcessing.InputFilter',
      /CSV, JSON or JSON Lines/,
    ],
    [
      'a ManifestFile location that is a prefix',
      (r) => {
        r.TransformInput.DataSource.S3DataSource = {
          S3DataType: 'ManifestFile',
          S3Uri: 's3://my-ml-bucket/manifests/',
        };
      },
      'TransformInput.DataSource.S3DataSource.S3Uri',
      /must name the manifest object/,
    ],
    [
      'an output sharing a raw prefix with the input (in vs in-out)',
      (r) => {
        r.TransformInput.DataSource.S3DataSource.S3Uri = 's3://my-ml-bucket/in';
        r.TransformOutput.S3OutputPath = 's3://my-ml-bucket/in-out/';
      },
      'TransformOutput.S3OutputPath',
      /must not put the outputs under the input prefix "s3:\/\/my-ml-bucket\/in"/,
    ],
    [
      'CsvHeader with JSON Lines content',
      (r) => {
        r.TransformInput.ContentType = 'application/jsonlines';
        r.Extensions = { CsvHeader: 'Skip' };
      },
      'Extensions.CsvHeader',
      /applies to ContentType text\/csv with SplitType Line/,
    ],
    [
      'CsvQuotedNewlines with SplitType None',
      (r) => {
        r.TransformInput.SplitType = 'None';
        r.Extensions = { CsvQuotedNewlines: true };
      },
      'Extensions.CsvQuotedNewlines',
      /SplitType None/,
    ],
    [
      'ResumeFrom naming the job itself',
      (r) => {
        r.Extensions = { ResumeFrom: r.TransformJobName };
      },
      'Extensions.ResumeFrom',
      /names this job itself/,
    ],
    ['a request that is a list', () => {}, '', /must be a JSON object/],
  ])('%s', (what, mutate, path, message) => {
    // biome-ignore lint/suspicious/noExplicitAny: the test breaks requests field by field on purpose
    const req = structuredClone(seed) as Record<string, any>;
    mutate(req);
    const problems = problemsOf(what === 'a request that is a list' ? [req] : req);
    const match = problems.find((p) => p.path === path);
    expect(match, `problems: ${JSON.stringify(problems)}`).toBeDefined();
    expect(match!.message).toMatch(message);
  });

  it('rejects a GPU type the deployment has not enabled, listing what is enabled', () => {
    const problems = problemsOf(withField('TransformResources.InstanceType', 'ml.g5.xlarge'), {
      enabledInstanceTypes: ['ml.g4dn.xlarge'],
    });
    expect(problems).toEqual([
      {
        path: 'TransformResources.InstanceType',
        message: expect.stringMatching(
          /needs EC2 capacity that this deployment has not enabled; .*ml\.g4dn\.xlarge \(EC2, enabled/,
        ),
      },
    ]);
  });

  it('rejects a model the deployment does not know, naming the known ones', () => {
    const problems = problemsOf(seed, { ...ctx, modelNames: ['iris', 'sentiment'] } as never);
    expect(problems).toEqual([
      { path: 'ModelName', message: expect.stringMatching(/known models: iris, sentiment/) },
    ]);
  });

  it('counts at least 50 distinct invalid requests in this table', () => {
    expect(INVALID.length).toBeGreaterThanOrEqual(50);
  });
});

describe('the instance catalog', () => {
  it.each(INSTANCE_TYPES)('%s maps to a valid Fargate size or to EC2 capacity of the same type', (type) => {
    const spec = INSTANCE_CATALOG[type]!;
    const capacity = resolveCapacity(type, [type]);
    if (capacity.kind === 'fargate') {
      const row = FARGATE_SIZES.find(([cpu]) => cpu === capacity.cpu);
      expect(row, 'a Fargate CPU value').toBeDefined();
      const [, min, max, step] = row!;
      expect(capacity.cpu).toBe(spec.vcpus * 1024);
      expect(capacity.memoryMiB).toBeGreaterThanOrEqual(Math.max(min, spec.memoryGiB * 1024));
      expect(capacity.memoryMiB).toBeLessThanOrEqual(max);
      expect((capacity.memoryMiB - min) % step).toBe(0);
      expect(spec.gpus + spec.neuronDevices).toBe(0);
    } else if (capacity.kind === 'ec2') {
      expect(capacity.instanceType).toBe(type.slice(3));
      expect(capacity.gpus).toBe(spec.gpus);
      expect(capacity.neuronDevices).toBe(spec.neuronDevices);
      expect(capacity.memoryMiB).toBeLessThan(spec.memoryGiB * 1024);
      expect(isFargateType(type)).toBe(false);
    } else {
      expect.unreachable(`unexpected capacity ${JSON.stringify(capacity)}`);
    }
  });

  it.each([
    ['ml.m5.xlarge', { kind: 'fargate', cpu: 4096, memoryMiB: 16384 }],
    ['ml.c4.xlarge', { kind: 'fargate', cpu: 4096, memoryMiB: 8192 }],
    ['ml.r6i.large', { kind: 'fargate', cpu: 2048, memoryMiB: 16384 }],
    ['ml.m5.4xlarge', { kind: 'fargate', cpu: 16384, memoryMiB: 65536 }],
  ])('sizes %s for Fargate as %j', (type, expected) => {
    expect(resolveCapacity(type, [])).toEqual(expected);
  });

  it.each(['ml.r6i.xlarge', 'ml.c5.9xlarge', 'ml.g5.xlarge', 'ml.inf2.xlarge', 'ml.p3.2xlarge'])(
    'runs %s on EC2 because no Fargate size matches it',
    (type) => {
      expect(fargateSizeFor(INSTANCE_CATALOG[type]!)).toBeUndefined();
      expect(resolveCapacity(type, [type]).kind).toBe('ec2');
    },
  );

  it('covers every family SageMaker offers for transform', () => {
    const families = new Set(INSTANCE_TYPES.map((t) => t.split('.')[1]));
    for (const f of [
      'm4',
      'c4',
      'p2',
      'p3',
      'c5',
      'm5',
      'm6i',
      'c6i',
      'r6i',
      'm7i',
      'c7i',
      'r7i',
      'g4dn',
      'g5',
      'g6',
      'trn1',
      'inf2',
    ]) {
      expect(families.has(f), f).toBe(true);
    }
  });
});

describe('SageMaker request fields honoured or clearly refused (issue 13 §4)', () => {
  it.each([
    [
      'virtual-hosted',
      'https://my-ml-bucket.s3.us-east-1.amazonaws.com/batch-input/',
      's3://my-ml-bucket/batch-input/',
    ],
    [
      'virtual-hosted, global endpoint',
      'https://my-ml-bucket.s3.amazonaws.com/in/a%20b/',
      's3://my-ml-bucket/in/a b/',
    ],
    [
      'path-style',
      'https://s3.eu-west-1.amazonaws.com/my-ml-bucket/batch-input/',
      's3://my-ml-bucket/batch-input/',
    ],
    [
      'path-style, legacy dash region',
      'https://s3-us-west-2.amazonaws.com/my.dotted.bucket/x',
      's3://my.dotted.bucket/x',
    ],
  ])('an https:// S3 URI (%s) is accepted and normalized to s3://', (_, uri, expected) => {
    const job = validateRequest(withField('TransformInput.DataSource.S3DataSource.S3Uri', uri), ctx);
    expect(job.TransformInput.DataSource.S3DataSource.S3Uri).toBe(expected);
    const out = validateRequest(
      withField('TransformOutput.S3OutputPath', uri.replace('input', 'output')),
      ctx,
    );
    expect(out.TransformOutput.S3OutputPath).toBe(expected.replace('input', 'output'));
  });

  it.each([
    ['the bucket root', 's3://my-ml-bucket/batch-input/', 's3://my-ml-bucket'],
    ['the bucket root with a slash', 's3://my-ml-bucket/batch-input/', 's3://my-ml-bucket/'],
    ['a prefix beside the input', 's3://my-ml-bucket/data/in/', 's3://my-ml-bucket/data/out/'],
    ['a prefix that holds the input', 's3://my-ml-bucket/jobs/in/', 's3://my-ml-bucket/jobs/'],
    ['another bucket at the same key', 's3://my-ml-bucket/in/', 's3://other-bucket/in/'],
  ])('accepts output at %s, as SageMaker does', (_, input, output) => {
    const req = withField('TransformOutput.S3OutputPath', output);
    (
      req.TransformInput as { DataSource: { S3DataSource: { S3Uri: string } } }
    ).DataSource.S3DataSource.S3Uri = input;
    const r = checkRequest(req, ctx);
    expect(r.ok ? [] : r.problems).toEqual([]);
  });

  it('refuses an output folder whose outputs all land under a raw input prefix (data/in with output data/)', () => {
    const req = withField('TransformOutput.S3OutputPath', 's3://my-ml-bucket/data/');
    (
      req.TransformInput as { DataSource: { S3DataSource: { S3Uri: string } } }
    ).DataSource.S3DataSource.S3Uri = 's3://my-ml-bucket/data/in';
    const problems = problemsOf(req);
    expect(problems.map((p) => p.path)).toEqual(['TransformOutput.S3OutputPath']);
    // data/input/a.csv would be written to data/input/a.csv.out, which the prefix data/in lists.
    expect(problems[0]!.message).toMatch(/a later run of this job would read them as input/);
  });

  it('an https:// output that overlaps the input is refused like its s3:// form', () => {
    const problems = problemsOf(
      withField('TransformOutput.S3OutputPath', 'https://my-ml-bucket.s3.amazonaws.com/batch-input/out/'),
    );
    expect(problems.map((p) => p.path)).toEqual(['TransformOutput.S3OutputPath']);
    expect(problems[0]!.message).toMatch(/must not put the outputs under the input prefix/);
  });

  it.each(['al2-ami-sagemaker-batch-gpu-470', 'al2-ami-sagemaker-batch-gpu-535'])(
    'TransformResources.TransformAmiVersion %s is accepted, kept, and warned about as ignored',
    (ami) => {
      const r = checkRequest(withField('TransformResources.TransformAmiVersion', ami), ctx);
      if (!r.ok) throw new Error(JSON.stringify(r.problems));
      expect(r.job.TransformResources.TransformAmiVersion).toBe(ami);
      expect(r.warnings.map((w) => w.path)).toEqual(['TransformResources.TransformAmiVersion']);
      expect(r.warnings[0]!.message).toMatch(/^accepted and ignored: .*GPU-optimized AMI/);
    },
  );

  it.each([
    '1234abcd-12ab-34cd-56ef-1234567890ab',
    'mrk-1234abcd12ab34cd56ef1234567890ab',
    'arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    'alias/ExampleAlias',
    'arn:aws:kms:us-west-2:111122223333:alias/ExampleAlias',
  ])('TransformResources.VolumeKmsKeyId accepts the KMS key form %s', (key) => {
    const r = checkRequest(withField('TransformResources.VolumeKmsKeyId', key), ctx);
    expect(r.ok ? [] : r.problems).toEqual([]);
  });

  it.each(['my-volume-key', 'arn:aws:kms:us-west-2:111122223333:key/not-a-key', 'arn:aws:s3:::bucket'])(
    'TransformResources.VolumeKmsKeyId refuses %s, which is no KMS key form',
    (key) => {
      const problems = problemsOf(withField('TransformResources.VolumeKmsKeyId', key));
      expect(problems.map((p) => p.path)).toEqual(['TransformResources.VolumeKmsKeyId']);
      expect(problems[0]!.message).toMatch(/^must name a KMS key as SageMaker documents it: a key ID/);
    },
  );

  it('fields accepted and ignored are named in warnings and in the normalized job', () => {
    const req = withField('TransformResources.VolumeKmsKeyId', 'alias/volumes');
    req.ExperimentConfig = { ExperimentName: 'e' };
    req.DataCaptureConfig = { DestinationS3Uri: 's3://cap/' };
    req.Tags = [{ Key: 'team', Value: 'ml' }];
    const r = checkRequest(req, ctx);
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    // Tags (on the job's tasks, and from ListTags) and DataCaptureConfig (capture manifests) are
    // honoured: not among them.
    const paths = ['TransformResources.VolumeKmsKeyId', 'ExperimentConfig'];
    expect(r.warnings.map((w) => w.path)).toEqual(paths);
    expect(r.job.IgnoredFields?.map((w) => w.path)).toEqual(paths);
    expect(r.job.Tags).toEqual([{ Key: 'team', Value: 'ml' }]);
    const plain = checkRequest(seed, ctx);
    expect(plain.ok && plain.warnings).toEqual([]);
    expect(plain.ok && plain.job).not.toHaveProperty('IgnoredFields');
  });

  it('DataCaptureConfig is normalized into the job, with its destination checked like any location', () => {
    const req = withField('DataCaptureConfig', {
      DestinationS3Uri: 's3://cap/monitor',
      KmsKeyId: 'alias/cap',
    });
    const r = checkRequest(req, ctx);
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.job.DataCaptureConfig).toEqual({ DestinationS3Uri: 's3://cap/monitor', KmsKeyId: 'alias/cap' });
    const bad = problemsOf(withField('DataCaptureConfig', { DestinationS3Uri: 'file:///tmp/cap/' }));
    expect(bad.map((p) => p.path)).toEqual(['DataCaptureConfig.DestinationS3Uri']);
    const missing = problemsOf(withField('DataCaptureConfig', { KmsKeyId: 'alias/cap' }));
    expect(missing.map((p) => p.path)).toEqual(['DataCaptureConfig.DestinationS3Uri']);
    const unknown = problemsOf(withField('DataCaptureConfig', { DestinationS3Uri: 's3://cap/', Foo: 1 }));
    expect(unknown.map((p) => p.path)).toEqual(['DataCaptureConfig.Foo']);
  });

  it('DataCaptureConfig.GenerateInferenceId true is accepted for CSV, JSON and JSON Lines output', () => {
    const capture = { DestinationS3Uri: 's3://cap/', GenerateInferenceId: true };
    const csv = checkRequest(withField('DataCaptureConfig', capture), ctx);
    if (!csv.ok) throw new Error(JSON.stringify(csv.problems));
    expect(csv.job.DataCaptureConfig?.GenerateInferenceId).toBe(true);
    for (const accept of ['application/json', 'application/jsonlines']) {
      const req = withField('DataCaptureConfig', capture);
      (req.TransformOutput as Record<string, unknown>).Accept = accept;
      expect(checkRequest(req, ctx).ok).toBe(true);
    }
  });

  it('DataCaptureConfig.GenerateInferenceId true is refused, with field paths, for output it cannot append to', () => {
    const capture = { DestinationS3Uri: 's3://cap/', GenerateInferenceId: true };
    const binary = withField('DataCaptureConfig', capture);
    (binary.TransformOutput as Record<string, unknown>).Accept = 'application/x-recordio-protobuf';
    const p1 = problemsOf(binary);
    expect(p1.map((p) => p.path)).toEqual(['DataCaptureConfig.GenerateInferenceId']);
    expect(p1[0]!.message).toMatch(/CSV, JSON and JSON Lines output.*"application\/x-recordio-protobuf"/);

    const streamed = withField('DataCaptureConfig', capture);
    streamed.MaxPayloadInMB = 0;
    (streamed.TransformInput as Record<string, unknown>).SplitType = 'None';
    const p2 = problemsOf(streamed);
    expect(p2.map((p) => p.path)).toEqual(['MaxPayloadInMB']);
    expect(p2[0]!.message).toMatch(/GenerateInferenceId/);

    const recordio = withField('DataCaptureConfig', capture);
    (recordio.TransformInput as Record<string, unknown>).SplitType = 'RecordIO';
    expect(problemsOf(recordio).map((p) => p.path)).toContain('DataCaptureConfig.GenerateInferenceId');

    const off = checkRequest(
      withField('DataCaptureConfig', { DestinationS3Uri: 's3://cap/', GenerateInferenceId: false }),
      ctx,
    );
    expect(off.ok).toBe(true);
  });

  it.each([
    ['an InputFilter', { InputFilter: '$.features' }, /DataProcessing\.InputFilter/],
    ['an OutputFilter', { OutputFilter: '$.x' }, /DataProcessing\.OutputFilter/],
    ['JoinSource Input', { JoinSource: 'Input' }, /DataProcessing\.JoinSource Input/],
  ])('MaxPayloadInMB 0 with %s is refused at validation', (_, processing, names) => {
    const req = withField('MaxPayloadInMB', 0);
    (req.TransformInput as Record<string, unknown>).SplitType = 'None';
    (req.TransformInput as Record<string, unknown>).ContentType = 'application/json';
    req.MaxConcurrentTransforms = 1;
    req.DataProcessing = processing;
    const problems = problemsOf(req);
    expect(problems.map((p) => p.path)).toEqual(['MaxPayloadInMB']);
    expect(problems[0]!.message).toMatch(names);
    expect(problems[0]!.message).toMatch(/cannot be used with/);
  });
});
