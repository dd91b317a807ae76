/**
 * Job names stay unique under concurrency: many executions validating one name at once, against a
 * real S3 wire protocol (the in-memory server answers `If-None-Match: *` as S3 does; s3rver ignores
 * it on PutObject) and against file:// storage.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeploymentContext } from '../../src/contract/deployment';
import { jobNameUri } from '../../src/contract/layout';
import { JobNameInUseError, validateStage } from '../../src/lifecycle/validate';
import { FileStorage } from '../../src/storage/file';
import type { Storage } from '../../src/storage/storage';
import { type MemoryS3, startMemoryS3 } from '../support/memory-s3';
import { makeTempDir, type TempDir } from '../support/tmp';

const CONTENDERS = 24;
let s3: MemoryS3;
let dir: TempDir;

beforeAll(async () => {
  s3 = await startMemoryS3({ buckets: ['work', 'data'] });
  dir = await makeTempDir('job-names');
});
afterAll(async () => {
  await s3.stop();
  await dir.remove();
});

const request = (name: string) => ({
  TransformJobName: name,
  ModelName: 'iris',
  TransformInput: { DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: 's3://data/in/' } } },
  TransformOutput: { S3OutputPath: 's3://data/out/' },
  TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
});

const context = (workRoot: string, jobNamesRoot: string): DeploymentContext => ({
  models: { iris: {} },
  enabledInstanceTypes: [],
  maxInstanceCount: 100,
  workRoot,
  jobNamesRoot,
  local: false,
});

describe.each([
  [
    'S3 (conditional PutObject)',
    () => s3.storage as Storage,
    () => context('s3://work/jobs/', 's3://work/job-names/'),
  ],
  [
    'file:// (hard link)',
    () => new FileStorage() as Storage,
    () => context(`${dir.uri}jobs/`, `${dir.uri}job-names/`),
  ],
])('reserving a job name on %s', (_, storage, ctx) => {
  it(`lets exactly one of ${CONTENDERS} concurrent executions with the same name win; the rest get ResourceInUse`, async () => {
    const name = `race-${Math.random().toString(36).slice(2, 8)}`;
    // Console-generated execution names, so every contender is a different execution of one name.
    const executions = Array.from(
      { length: CONTENDERS },
      (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    );
    const outcomes = await Promise.allSettled(
      executions.map((executionName) =>
        validateStage({ request: request(name), executionName }, ctx(), storage()),
      ),
    );
    const winners = outcomes.filter((o) => o.status === 'fulfilled');
    const losers = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as Error] : []));
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(CONTENDERS - 1);
    for (const e of losers) {
      expect(e).toBeInstanceOf(JobNameInUseError);
      expect(e.name).toBe('ResourceInUse');
      expect(e.message).toContain(`a job with this name already exists (transform-job/${name}`);
    }
    // The record names the winner, and a retried validate of the winner passes.
    const record = JSON.parse((await storage().readAll(jobNameUri(ctx().jobNamesRoot!, name))).toString());
    const winner = executions[outcomes.findIndex((o) => o.status === 'fulfilled')]!;
    expect(record).toMatchObject({ jobName: name, executionName: winner });
    await expect(
      validateStage({ request: request(name), executionName: winner }, ctx(), storage()),
    ).resolves.toMatchObject({ jobName: name, creationTime: record.creationTime });
  });
});

describe('putIfAbsent', () => {
  it.each([
    ['S3', () => s3.storage as Storage, 's3://work/once.txt'],
    ['file://', () => new FileStorage() as Storage, () => `${dir.uri}once.txt`],
  ])('on %s creates once and leaves the first body in place', async (_, storage, where) => {
    const uri = typeof where === 'string' ? where : where();
    expect(await storage().putIfAbsent(uri, 'first')).toBe(true);
    expect(await storage().putIfAbsent(uri, 'second')).toBe(false);
    expect((await storage().readAll(uri)).toString()).toBe('first');
  });
});
