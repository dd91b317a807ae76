import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DeploymentContext } from '../../src/contract/deployment';
import { outputObjectUri, planUri, resultUri } from '../../src/contract/layout';
import type { Plan } from '../../src/contract/plan';
import { emptyCounters, type PartitionResult } from '../../src/contract/results';
import type { JobRef } from '../../src/contract/state';
import { JobValidationError } from '../../src/job/problems';
import { finalizeStage } from '../../src/lifecycle/finalize';
import { planStage } from '../../src/lifecycle/plan';
import { validateStage } from '../../src/lifecycle/validate';
import { FileStorage } from '../../src/storage/file';
import { readJson, writeJson } from '../../src/storage/json';
import type { Storage } from '../../src/storage/storage';
import { type MemoryS3, startMemoryS3 } from '../support/memory-s3';
import { makeTempDir, type TempDir } from '../support/tmp';

/**
 * `Extensions.ResumeFrom` through the lifecycle's own stages (validate, plan, finalize) on a
 * `file://` store and on the in-memory S3 server via the SDK. The earlier job's partition results
 * are written here as a sidecar writes them; test/local/resume.test.ts runs real sidecars and models.
 */

function request(root: string, name: string, extra: Record<string, unknown> = {}) {
  return {
    TransformJobName: name,
    ModelName: 'm',
    BatchStrategy: 'MultiRecord',
    MaxPayloadInMB: 1,
    TransformInput: {
      DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `${root}in/` } },
      ContentType: 'text/csv',
      SplitType: 'Line',
    },
    TransformOutput: { S3OutputPath: `${root}out/`, AssembleWith: 'Line' },
    TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 2 },
    ...extra,
  };
}

const context = (root: string): DeploymentContext => ({
  models: { m: {} },
  enabledInstanceTypes: [],
  maxInstanceCount: 100,
  workRoot: `${root}work/`,
  jobNamesRoot: `${root}job-names/`,
  // file:// locations are for local runs; the deployed checks (the name's reservation) run on S3.
  local: root.startsWith('file://'),
});

/**
 * Runs a job through validate and plan, then does what its sidecars would: every object whose
 * relative key is not in `failing` gets its `.out` (the input upper-cased) and a Completed result.
 */
async function runJob(
  storage: Storage,
  root: string,
  name: string,
  opts: {
    failing?: readonly string[];
    extra?: Record<string, unknown>;
    finalize?: boolean;
    /** Called with what planning the job took, in S3 requests of the in-memory server. */
    s3?: { server: MemoryS3; planned: (requests: Map<string, number>) => void };
  } = {},
): Promise<{ ref: JobRef; plan: Plan }> {
  const ref = await validateStage(
    { request: request(root, name, opts.extra), executionName: name },
    context(root),
    storage,
  );
  opts.s3?.server.requests.clear();
  await planStage(ref, storage);
  if (opts.s3) opts.s3.planned(new Map(opts.s3.server.requests));
  const plan = await readJson<Plan>(storage, planUri(ref.workUri));
  for (const partition of plan.partitions) {
    const items = [];
    for (const item of partition.items) {
      const o = plan.objects[item.object]!;
      const failed = opts.failing?.includes(o.relativeKey);
      const out = (await storage.readAll(o.uri)).toString().toUpperCase();
      if (!failed) await storage.put(outputObjectUri(plan.outputUri, o.relativeKey), out);
      items.push({
        object: item.object,
        shard: item.shard,
        status: failed ? ('Failed' as const) : ('Completed' as const),
        records: 1,
        failedRecords: 0,
        bytesIn: o.size,
        bytesOut: failed ? 0 : Buffer.byteLength(out),
        durationMs: 1,
        ...(failed ? { error: { message: 'model answered 500' } } : {}),
      });
    }
    const result: PartitionResult = {
      partition: partition.index,
      startedAt: new Date().toISOString(),
      endedAt: new Date().toISOString(),
      effective: { MaxConcurrentTransforms: 1, MaxPayloadInMB: 1, BatchStrategy: 'MultiRecord' },
      items,
      counters: emptyCounters(),
    };
    await writeJson(storage, resultUri(ref.workUri, partition.index), result);
  }
  if (opts.finalize !== false) await finalizeStage(ref, storage);
  return { ref, plan };
}

const keysOf = (plan: Plan, pick: (o: Plan['objects'][number]) => boolean) =>
  plan.objects
    .filter(pick)
    .map((o) => o.relativeKey)
    .sort();
const planned = (plan: Plan) =>
  plan.partitions.flatMap((p) => p.items.map((i) => plan.objects[i.object]!.relativeKey)).sort();

describe.each([
  ['file://', 'file'],
  ['the in-memory S3 server', 's3'],
] as const)('resuming a job on %s', (_label, kind) => {
  let tmp: TempDir;
  let s3: MemoryS3;
  let storage: Storage;
  let root: string;
  let seq = 0;
  beforeAll(async () => {
    if (kind === 's3') s3 = await startMemoryS3({ buckets: ['data'] });
  });
  afterAll(async () => {
    await s3?.stop();
  });
  beforeEach(async () => {
    seq++;
    if (kind === 'file') {
      tmp = await makeTempDir('resume');
      storage = new FileStorage();
      root = tmp.uri;
      await mkdir(join(tmp.path, 'in'), { recursive: true });
      for (let i = 0; i < 5; i++) await writeFile(join(tmp.path, 'in', `o${i}.csv`), `row ${i}\n`);
    } else {
      storage = s3.storage;
      root = `s3://data/t${seq}/`;
      s3.seed(
        'data',
        Array.from({ length: 5 }, (_, i) => [`t${seq}/in/o${i}.csv`, `row ${i}\n`] as const),
      );
    }
  });
  afterEach(async () => {
    await tmp?.remove();
  });

  it('plans only the objects the earlier job did not complete, and counts the rest as completed earlier', async () => {
    await runJob(storage, root, 'first', { failing: ['o3.csv'] });
    const { ref, plan } = await runJob(storage, root, 'second', {
      extra: { Extensions: { ResumeFrom: 'first' } },
    });
    expect(plan.resumeFrom).toBe('first');
    expect(keysOf(plan, (o) => o.completedEarlier === true)).toEqual([
      'o0.csv',
      'o1.csv',
      'o2.csv',
      'o4.csv',
    ]);
    expect(planned(plan)).toEqual(['o3.csv']);
    const summary = await finalizeStage(ref, storage);
    expect(summary.TransformJobStatus).toBe('Completed');
    expect(summary.Progress).toMatchObject({
      objectsTotal: 5,
      objectsCompleted: 1,
      objectsCompletedEarlier: 4,
      objectsFailed: 0,
    });
  });

  it('processes again an object whose output is missing or not the size the earlier job wrote', async () => {
    const { plan: first } = await runJob(storage, root, 'first', { failing: ['o3.csv'] });
    await storage.delete(outputObjectUri(first.outputUri, 'o1.csv'));
    await storage.put(outputObjectUri(first.outputUri, 'o2.csv'), 'torn');
    const { plan } = await runJob(storage, root, 'second', {
      extra: { Extensions: { ResumeFrom: 'first' } },
    });
    expect(planned(plan)).toEqual(['o1.csv', 'o2.csv', 'o3.csv']);
  });

  it('keeps what a chain of resumed jobs completed', async () => {
    await runJob(storage, root, 'first', { failing: ['o3.csv', 'o4.csv'] });
    await runJob(storage, root, 'second', {
      failing: ['o4.csv'],
      extra: { Extensions: { ResumeFrom: 'first' } },
    });
    const { plan } = await runJob(storage, root, 'third', {
      extra: { Extensions: { ResumeFrom: 'second' } },
    });
    expect(planned(plan)).toEqual(['o4.csv']);
    expect(keysOf(plan, (o) => o.completedEarlier === true)).toEqual([
      'o0.csv',
      'o1.csv',
      'o2.csv',
      'o3.csv',
    ]);
  });

  it('may use other instances, concurrency, client settings and shard size than the earlier job', async () => {
    await runJob(storage, root, 'first', { failing: ['o0.csv'] });
    const { plan } = await runJob(storage, root, 'second', {
      extra: {
        MaxConcurrentTransforms: 4,
        ModelClientConfig: { InvocationsTimeoutInSeconds: 3600, InvocationsMaxRetries: 0 },
        TransformResources: { InstanceType: 'ml.c5.xlarge', InstanceCount: 7 },
        Extensions: { ResumeFrom: 'first', ShardMinSizeInMB: 1, ModelStartupTimeoutInSeconds: 60 },
      },
    });
    expect(planned(plan)).toEqual(['o0.csv']);
  });

  type Request = ReturnType<typeof request>;
  it.each<[string, string, (r: Request) => Record<string, unknown>, RegExp]>([
    [
      'an earlier job that does not exist',
      'never-ran',
      () => ({}),
      /no job named "never-ran" was found in this deployment's work location/,
    ],
    [
      'an earlier job with another SplitType',
      'first',
      (r) => ({ TransformInput: { ...r.TransformInput, SplitType: 'None' } }),
      /ran a different request: TransformInput\.SplitType \("Line" there, "None" here\)/,
    ],
    [
      'an earlier job that wrote under another S3OutputPath',
      'first',
      (r) => ({
        TransformOutput: { ...r.TransformOutput, S3OutputPath: `${r.TransformOutput.S3OutputPath}v2/` },
      }),
      /TransformOutput\.S3OutputPath \(".*out\/" there, ".*out\/v2\/" here\)/,
    ],
    [
      'an earlier job with another batch strategy and environment',
      'first',
      () => ({ BatchStrategy: 'SingleRecord', Environment: { MODE: 'fast' } }),
      /BatchStrategy \("MultiRecord" there, "SingleRecord" here\), Environment\.MODE \(absent there, "fast" here\)/,
    ],
  ])('refuses to resume from %s, at Extensions.ResumeFrom', async (_what, from, change, message) => {
    await runJob(storage, root, 'first', { failing: ['o3.csv'] });
    const base = request(root, 'second');
    const attempt = validateStage(
      { request: { ...base, ...change(base), Extensions: { ResumeFrom: from } }, executionName: 'second' },
      context(root),
      storage,
    );
    await expect(attempt).rejects.toBeInstanceOf(JobValidationError);
    const problems = await attempt.catch((e: JobValidationError) => e.problems);
    expect(problems).toEqual([{ path: 'Extensions.ResumeFrom', message: expect.stringMatching(message) }]);
    // A refused request does not take its name.
    await expect(
      validateStage({ request: base, executionName: 'second' }, context(root), storage),
    ).resolves.toMatchObject({ jobName: 'second' });
  });

  it('refuses to resume from a job that has not ended (no summary yet)', async () => {
    await runJob(storage, root, 'first', { finalize: false });
    const attempt = validateStage(
      { request: request(root, 'second', { Extensions: { ResumeFrom: 'first' } }), executionName: 'second' },
      context(root),
      storage,
    );
    await expect(attempt).rejects.toThrow(
      /Extensions\.ResumeFrom: job "first" has not ended \(it has no summary yet\)/,
    );
  });

  it('refuses a job that names itself', async () => {
    await expect(
      validateStage(
        { request: request(root, 'first', { Extensions: { ResumeFrom: 'first' } }), executionName: 'first' },
        context(root),
        storage,
      ),
    ).rejects.toThrow(/Extensions\.ResumeFrom: names this job itself/);
  });
});

describe('confirming a resumed job outputs on S3', () => {
  let s3: MemoryS3;
  beforeAll(async () => {
    s3 = await startMemoryS3({ buckets: ['data'] });
  });
  afterAll(async () => {
    await s3.stop();
  });

  it('lists the output location instead of one HEAD per output (500 objects)', async () => {
    const root = 's3://data/many/';
    s3.seed(
      'data',
      Array.from(
        { length: 500 },
        (_, i) => [`many/in/o${String(i).padStart(3, '0')}.csv`, `row ${i}\n`] as const,
      ),
    );
    await runJob(s3.storage, root, 'first', { failing: ['o007.csv'] });
    let requests = new Map<string, number>();
    const { plan } = await runJob(s3.storage, root, 'second', {
      extra: { Extensions: { ResumeFrom: 'first' } },
      s3: { server: s3, planned: (r) => (requests = r) },
    });
    expect(planned(plan)).toEqual(['o007.csv']);
    // Planning listed the input and the outputs, a page each; its only HEADs are before reading the
    // earlier job's documents: its plan, and results and progress of its 2 partitions.
    expect(requests.get('HeadObject') ?? 0).toBe(5);
    expect(requests.get('ListObjectsV2')).toBeLessThanOrEqual(4);
  });
});
