import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_ACCOUNT } from '../../src/api/arns';
import type { JobView } from '../../src/api/job-description';
import { ModelRegistry } from '../../src/api/model-registry';
import { type ApiServer, startApiServer } from '../../src/api/server';
import type { TransformJobs } from '../../src/api/transform-jobs';

/**
 * The server's protocol layer in this process, over real HTTP: AWS JSON 1.1 framing, the error
 * shapes botocore reads, the list parameters and CreateModel's rules, one row per rule with its
 * field path. The transform-job back end is a stand-in holding one job; the boto3 tests run the
 * real ones.
 */

const identity = { partition: 'aws', region: 'eu-west-1', account: LOCAL_ACCOUNT };
const job: JobView = {
  name: 'held',
  status: 'Failed',
  request: { TransformJobName: 'held', ModelName: 'm', Tags: [{ Key: 'team', Value: 'search' }] },
  creationTime: '2030-01-31T10:00:00.500Z',
  lastModifiedTime: '2030-01-31T10:05:00.000Z',
  endTime: '2030-01-31T10:05:00.000Z',
  failureReason: 'Transform job "held": the model answered 500',
};
const stand: TransformJobs = {
  label: 'stand-in',
  identity,
  async create() {},
  async get(name) {
    return name === job.name ? job : undefined;
  },
  async list() {
    return { views: [job] };
  },
  async stop() {},
  async close() {},
};

let api: ApiServer;
beforeAll(async () => {
  api = await startApiServer({ jobs: stand, models: new ModelRegistry(identity), port: 0 });
});
afterAll(async () => {
  await api.close();
});

async function call(
  target: string | undefined,
  body: unknown,
  init: { method?: string; raw?: string } = {},
): Promise<{ status: number; type: string | null; body: Record<string, unknown> }> {
  const res = await fetch(api.url, {
    method: init.method ?? 'POST',
    headers: {
      'Content-Type': 'application/x-amz-json-1.1',
      ...(target ? { 'X-Amz-Target': target } : {}),
    },
    ...(init.method === 'GET' ? {} : { body: init.raw ?? JSON.stringify(body) }),
  });
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as never };
}

describe('AWS JSON 1.1 framing', () => {
  it.each([
    ['a GET', 'UnknownOperationException', undefined, { method: 'GET' }, 'POST /'],
    ['no X-Amz-Target', 'UnknownOperationException', undefined, {}, 'X-Amz-Target'],
    ['another service', 'UnknownOperationException', 'Foo_20180101.Bar', {}, 'SageMaker.<Operation>'],
    [
      'an operation not offered',
      'UnknownOperationException',
      'SageMaker.CreateEndpoint',
      {},
      'CreateEndpoint',
    ],
    [
      'a body that is not JSON',
      'SerializationException',
      'SageMaker.ListModels',
      { raw: '{"MaxResults":' },
      'not JSON',
    ],
    ['a JSON array', 'SerializationException', 'SageMaker.ListModels', { raw: '[]' }, 'JSON object'],
  ] as const)('answers %s with HTTP 400 and %s', async (_case, code, target, init, says) => {
    const r = await call(target, {}, init);
    expect(r.status).toBe(400);
    expect(r.type).toBe('application/x-amz-json-1.1');
    expect(r.body.__type).toBe(code);
    expect(r.body.message).toContain(says);
  });

  it('answers DescribeTransformJob with the ARN, epoch-second timestamps and the failure reason', async () => {
    const r = await call('SageMaker.DescribeTransformJob', { TransformJobName: 'held' });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      TransformJobName: 'held',
      TransformJobArn: `arn:aws:sagemaker:eu-west-1:${LOCAL_ACCOUNT}:transform-job/held`,
      TransformJobStatus: 'Failed',
      FailureReason: 'Transform job "held": the model answered 500',
      ModelName: 'm',
      CreationTime: Date.parse('2030-01-31T10:00:00.500Z') / 1000,
      TransformEndTime: Date.parse('2030-01-31T10:05:00.000Z') / 1000,
    });
  });

  it("answers ListTags with a transform job's Tags, which DescribeTransformJob leaves out as SageMaker does", async () => {
    const arn = `arn:aws:sagemaker:eu-west-1:${LOCAL_ACCOUNT}:transform-job/held`;
    const r = await call('SageMaker.ListTags', { ResourceArn: arn });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ Tags: [{ Key: 'team', Value: 'search' }] });
    const described = await call('SageMaker.DescribeTransformJob', { TransformJobName: 'held' });
    expect(described.body).not.toHaveProperty('Tags');
  });

  it.each([
    [`arn:aws:sagemaker:eu-west-1:${LOCAL_ACCOUNT}:transform-job/nope`, /Could not find transform job/],
    [`arn:aws:sagemaker:eu-west-1:${LOCAL_ACCOUNT}:model/m`, /is not a transform job of this server/],
  ])('refuses ListTags for %s with ValidationException', async (arn, message) => {
    const r = await call('SageMaker.ListTags', { ResourceArn: arn });
    expect(r.status).toBe(400);
    expect(r.body.__type).toMatch(/ValidationException/);
    expect(String(r.body.message)).toMatch(message);
  });

  it('answers an empty body as no parameters (ListTransformJobs with its defaults)', async () => {
    const r = await call('SageMaker.ListTransformJobs', undefined, { raw: '' });
    expect(r.status).toBe(200);
    expect(r.body.TransformJobSummaries).toEqual([
      {
        TransformJobName: 'held',
        TransformJobArn: `arn:aws:sagemaker:eu-west-1:${LOCAL_ACCOUNT}:transform-job/held`,
        CreationTime: Date.parse('2030-01-31T10:00:00.500Z') / 1000,
        TransformEndTime: Date.parse('2030-01-31T10:05:00.000Z') / 1000,
        LastModifiedTime: Date.parse('2030-01-31T10:05:00.000Z') / 1000,
        TransformJobStatus: 'Failed',
        FailureReason: 'Transform job "held": the model answered 500',
      },
    ]);
  });
});

describe('list parameters', () => {
  it.each([
    [{ MaxResults: 0 }, 'MaxResults'],
    [{ MaxResults: 101 }, 'MaxResults'],
    [{ StatusEquals: 'Running' }, 'StatusEquals'],
    [{ SortBy: 'Size' }, 'SortBy'],
    [{ SortOrder: 'Up' }, 'SortOrder'],
    [{ NameContains: 'a_b' }, 'NameContains'],
    [{ CreationTimeAfter: 'soon' }, 'CreationTimeAfter'],
    [{ LastModifiedTimeBefore: true }, 'LastModifiedTimeBefore'],
    [{ Status: 'Completed' }, 'Status'],
  ])('ListTransformJobs refuses %j with a ValidationException naming %s', async (params, path) => {
    const r = await call('SageMaker.ListTransformJobs', params);
    expect(r.body.__type).toBe('ValidationException');
    expect(r.body.Problems).toEqual([{ Path: path, Message: expect.any(String) }]);
  });

  it('ListModels refuses the status filter and SortBy Status, which it does not have', async () => {
    const r = await call('SageMaker.ListModels', { StatusEquals: 'Completed', SortBy: 'Status' });
    expect(r.body.__type).toBe('ValidationException');
    expect((r.body.Problems as Array<{ Path: string }>).map((p) => p.Path)).toEqual([
      'StatusEquals',
      'SortBy',
    ]);
  });

  it('refuses a NextToken it did not give out', async () => {
    const r = await call('SageMaker.ListModels', { NextToken: 'bm9wZQ' });
    expect(r.body).toMatchObject({
      __type: 'ValidationException',
      message: expect.stringContaining('NextToken'),
    });
  });
});

describe('CreateModel', () => {
  const container = { Image: 'registry.example/m:1' };
  it.each([
    ['a name with an underscore', { ModelName: 'a_b', PrimaryContainer: container }, 'ModelName'],
    ['no container', { ModelName: 'm1' }, 'PrimaryContainer'],
    ['two containers', { ModelName: 'm1', Containers: [container, container] }, 'Containers'],
    [
      'PrimaryContainer and Containers',
      { ModelName: 'm1', PrimaryContainer: container, Containers: [container] },
      'Containers',
    ],
    [
      'a MultiModel container',
      { ModelName: 'm1', PrimaryContainer: { ...container, Mode: 'MultiModel' } },
      'PrimaryContainer.Mode',
    ],
    [
      'ModelDataSource',
      { ModelName: 'm1', PrimaryContainer: { ...container, ModelDataSource: { S3DataSource: {} } } },
      'PrimaryContainer.ModelDataSource',
    ],
    [
      'an environment key SageMaker refuses',
      { ModelName: 'm1', PrimaryContainer: { ...container, Environment: { '1A': 'x' } } },
      'PrimaryContainer.Environment["1A"]',
    ],
    ['an unknown member', { ModelName: 'm1', PrimaryContainer: container, Colour: 'blue' }, ''],
  ])('refuses %s with a ValidationException at its field path', async (_case, body, path) => {
    const r = await call('SageMaker.CreateModel', body);
    expect(r.status).toBe(400);
    expect(r.body.__type).toBe('ValidationException');
    expect((r.body.Problems as Array<{ Path: string }>).map((p) => p.Path)).toContain(path);
  });

  it('creates, lists newest first in pages, describes and deletes models', async () => {
    for (const name of ['m-a', 'm-b', 'm-c']) {
      const r = await call('SageMaker.CreateModel', { ModelName: name, PrimaryContainer: container });
      expect(r.body).toEqual({ ModelArn: `arn:aws:sagemaker:eu-west-1:${LOCAL_ACCOUNT}:model/${name}` });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const first = await call('SageMaker.ListModels', { MaxResults: 2 });
    expect((first.body.Models as Array<{ ModelName: string }>).map((m) => m.ModelName)).toEqual([
      'm-c',
      'm-b',
    ]);
    const second = await call('SageMaker.ListModels', { MaxResults: 2, NextToken: first.body.NextToken });
    expect((second.body.Models as Array<{ ModelName: string }>).map((m) => m.ModelName)).toEqual(['m-a']);
    expect(second.body).not.toHaveProperty('NextToken');
    const byName = await call('SageMaker.ListModels', {
      SortBy: 'Name',
      SortOrder: 'Ascending',
      NameContains: 'M-',
    });
    expect((byName.body.Models as Array<{ ModelName: string }>).map((m) => m.ModelName)).toEqual([
      'm-a',
      'm-b',
      'm-c',
    ]);
    const described = await call('SageMaker.DescribeModel', { ModelName: 'm-b' });
    expect(described.body).toEqual({
      ModelName: 'm-b',
      PrimaryContainer: container,
      ModelArn: `arn:aws:sagemaker:eu-west-1:${LOCAL_ACCOUNT}:model/m-b`,
      CreationTime: expect.any(Number),
    });
    expect((await call('SageMaker.DeleteModel', { ModelName: 'm-b' })).body).toEqual({});
    expect((await call('SageMaker.DescribeModel', { ModelName: 'm-b' })).body).toEqual({
      __type: 'ValidationException',
      message: `Could not find model "arn:aws:sagemaker:eu-west-1:${LOCAL_ACCOUNT}:model/m-b".`,
    });
  });
});
