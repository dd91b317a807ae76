import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Plan } from '../../src/contract/plan';
import { jsonArrayElements } from '../../src/lifecycle/manifest';
import { PlanError, planStage } from '../../src/lifecycle/plan';
import { validateStage } from '../../src/lifecycle/validate';
import { readJson } from '../../src/storage/json';
import type { Storage } from '../../src/storage/storage';
import { type MemoryS3, startMemoryS3 } from '../support/memory-s3';

/**
 * Manifests (S3DataType ManifestFile) read as a stream and confirmed from a listing, against the
 * in-memory S3 server through the SDK.
 */

async function elements(text: string, chunkBytes: number): Promise<unknown[]> {
  const bytes = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunkBytes) chunks.push(bytes.subarray(i, i + chunkBytes));
  const out: unknown[] = [];
  for await (const e of jsonArrayElements(Readable.from(chunks))) out.push(e);
  return out;
}

describe('a JSON array read an element at a time', () => {
  const texts = [
    '[{"prefix":"s3://b/p/"},"a.csv","sub/b.csv"]',
    ' \n[ {"prefix": "s3://b/p/", "x": [1, {"y": "]"}]} , "a,b.csv" ,"q\\"uote].csv", "é/ü.csv"\n]\n',
    '[]',
    '\ufeff["with a byte order mark"]',
  ];
  it.each(texts.flatMap((t) => [1, 2, 3, 7, 1024].map((n) => [t, n] as const)))(
    'yields what JSON.parse reads from %j in %i-byte chunks',
    async (text, n) => {
      expect(await elements(text, n)).toEqual(JSON.parse(text.replace(/^\ufeff/, '')));
    },
  );

  it.each([
    ['["a", "b"', /ends before the array closes/],
    ['["a",]', /element 1 is empty/],
    ['["a"] x', /text after the array ends/],
    ['["a" "b"]', /element 0/],
    ['', /empty/],
  ])('refuses %j', async (text, message) => {
    await expect(elements(text, 3)).rejects.toThrow(message);
  });
});

describe('planning from a manifest on S3', () => {
  let s3: MemoryS3;
  let seq = 0;
  beforeAll(async () => {
    s3 = await startMemoryS3({ buckets: ['data', 'work'] });
  });
  afterAll(async () => {
    await s3.stop();
  });

  /** Seeds `count` objects and a manifest naming `entries` of them (or names not seeded). */
  async function planManifest(
    entries: (keys: string[]) => string[],
    count: number,
    storage: Storage = s3.storage,
  ) {
    const name = `manifest-${++seq}`;
    const keys = Array.from({ length: count }, (_, i) => `k${String(i).padStart(6, '0')}.csv`);
    s3.seed(
      'data',
      keys.map((k, i) => [`${name}/in/${k}`, 'x'.repeat(1 + (i % 50))] as const),
    );
    // Other objects beside the listed ones under the manifest's prefix: the listing passes them by.
    s3.seed('data', [[`${name}/in/zz-not-listed.csv`, 'z']]);
    s3.seed('data', [
      [`${name}/list.manifest`, JSON.stringify([{ prefix: `s3://data/${name}/in/` }, ...entries(keys)])],
    ]);
    const ref = await validateStage(
      {
        request: {
          TransformJobName: name,
          ModelName: 'm',
          TransformInput: {
            DataSource: {
              S3DataSource: { S3DataType: 'ManifestFile', S3Uri: `s3://data/${name}/list.manifest` },
            },
            SplitType: 'Line',
          },
          TransformOutput: { S3OutputPath: `s3://data/${name}/out/` },
          TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 3 },
        },
      },
      {
        models: { m: {} },
        enabledInstanceTypes: [],
        maxInstanceCount: 100,
        workRoot: 's3://work/jobs/',
        local: true,
      },
      storage,
    );
    s3.requests.clear();
    const planRef = await planStage(ref, storage);
    const requests = new Map(s3.requests);
    return { planRef, requests, plan: await readJson<Plan>(storage, planRef.planUri) };
  }

  it('confirms 2,000 entries from a listing, not one HEAD each, keeping the manifest order and sizes', async () => {
    const { plan, requests } = await planManifest((keys) => [...keys].reverse(), 2_000);
    expect(plan.objects).toHaveLength(2_000);
    expect(plan.objects[0]).toMatchObject({ relativeKey: 'k001999.csv', size: 1 + (1999 % 50) });
    expect(plan.objects[1_999]).toMatchObject({ relativeKey: 'k000000.csv', size: 1 });
    expect(requests.get('HeadObject') ?? 0).toBe(0);
    // Two pages of 1,000 keys: the listing stops once every entry is found.
    expect(requests.get('ListObjectsV2')).toBe(2);
  });

  it('HEADs each entry of a short manifest', async () => {
    const { plan, requests } = await planManifest((keys) => keys.slice(0, 5), 5);
    expect(plan.objects.map((o) => o.relativeKey)).toEqual([
      'k000000.csv',
      'k000001.csv',
      'k000002.csv',
      'k000003.csv',
      'k000004.csv',
    ]);
    expect(requests.get('HeadObject')).toBe(5);
  });

  it('names the entries that do not exist', async () => {
    await expect(planManifest((keys) => [...keys, 'gone-1.csv', 'gone-2.csv'], 300)).rejects.toThrow(
      /lists 2 object\(s\) that do not exist: s3:\/\/data\/manifest-\d+\/in\/gone-1\.csv, s3:\/\/data\/manifest-\d+\/in\/gone-2\.csv/,
    );
    await expect(planManifest((keys) => [...keys, 'gone.csv'], 300)).rejects.toBeInstanceOf(PlanError);
  });

  it('reads the manifest as a stream, never whole', async () => {
    // The real S3 storage, except that reading the manifest whole fails.
    const real = s3.storage;
    const storage = new Proxy(real, {
      get: (target, key) => {
        if (key === 'readAll')
          return async (uri: string) => {
            if (uri.endsWith('.manifest')) throw new Error(`read whole: ${uri}`);
            return target.readAll(uri);
          };
        const member: unknown = Reflect.get(target, key);
        return typeof member === 'function' ? member.bind(target) : member;
      },
    }) as Storage;
    const { plan } = await planManifest((keys) => keys, 100, storage);
    expect(plan.objects).toHaveLength(100);
  });
});
