import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Transformer } from '../../src/client/transformer';
import { waitAndReport } from '../../src/cli/wait';
import { emptyCounters } from '../../src/contract/results';
import { executionArn, FakeAwsClient, historyWithValidatedJob, STATE_MACHINE_ARN } from '../client/fake-aws';
import { makeTempDir, type TempDir } from '../support/tmp';

/**
 * `wait`'s progress bar, in process: its standard error is a stream that says it is a terminal (or
 * not), so what a user would see can be read back. AWS is the fake Step Functions client.
 */

const request = JSON.parse(readFileSync('test/job/seed-request.json', 'utf8'));
const NAME: string = request.TransformJobName;
const ARN = executionArn(NAME);

class CapturedStream extends Writable {
  text = '';
  readonly columns = 160;
  constructor(readonly isTTY: boolean) {
    super();
  }
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

let dir: TempDir;
beforeEach(async () => {
  dir = await makeTempDir('wait-bar');
});
afterEach(async () => {
  await dir.remove();
});

/** A running job whose sidecars have read 1 MiB of 4 MiB, then the same job completed. */
async function runningThenCompleted() {
  const workUri = `${dir.uri}jobs/${NAME}/`;
  const work = workUri.slice('file://'.length);
  await mkdir(join(work, 'progress'), { recursive: true });
  await writeFile(
    join(work, 'plan.json'),
    JSON.stringify({
      version: 1,
      jobName: NAME,
      createdAt: '2030-01-31T10:00:30.000Z',
      workUri,
      outputUri: 's3://out/',
      objects: [0, 1, 2, 3].map((i) => ({
        uri: `s3://in/${i}.csv`,
        relativeKey: `${i}.csv`,
        size: 1048576,
        shardCount: 1,
      })),
      partitions: [{ index: 0, items: [0, 1, 2, 3].map((object) => ({ object, shard: 0 })), bytes: 4194304 }],
      totalBytes: 4194304,
      skipped: [],
    }),
  );
  await writeFile(
    join(work, 'progress/00000.json'),
    JSON.stringify({
      partition: 0,
      updatedAt: '2030-01-31T10:05:00.000Z',
      counters: { ...emptyCounters(), records: 250, bytesIn: 1048576 },
    }),
  );
  const base = {
    executionArn: ARN,
    name: NAME,
    startDate: new Date('2030-01-31T10:00:00Z'),
    input: JSON.stringify(request),
  };
  const output = {
    TransformJobName: NAME,
    TransformJobStatus: 'Completed',
    CreationTime: '2030-01-31T10:00:01.000Z',
    Progress: {
      ...emptyCounters(),
      objectsTotal: 4,
      objectsCompleted: 4,
      records: 1000,
      bytesIn: 4194304,
      skippedObjects: 0,
    },
  };
  const sfn = new FakeAwsClient('sfn', {
    DescribeExecution: [
      { ...base, status: 'RUNNING' },
      {
        ...base,
        status: 'SUCCEEDED',
        stopDate: new Date('2030-01-31T10:20:00Z'),
        output: JSON.stringify(output),
      },
    ],
    GetExecutionHistory: historyWithValidatedJob(NAME, workUri),
  });
  const transformer = new Transformer({ stateMachineArn: STATE_MACHINE_ARN, env: {}, clients: { sfn } });
  return { job: await transformer.attach(NAME), sfn };
}

describe('wait', () => {
  it('draws a progress bar of the bytes read on a terminal, and prints the description on stdout', async () => {
    const { job } = await runningThenCompleted();
    const stdout = new CapturedStream(false);
    const stderr = new CapturedStream(true);
    const code = await waitAndReport(job, { pollInterval: 0 }, { stdout, stderr });
    expect(code).toBe(0);
    expect(stderr.text).toContain('25% | InProgress | objects 0/4 | records 250 | 1.0 MB');
    expect(stderr.text).toContain('100% | Completed | objects 4/4 | records 1000 | 4.0 MB');
    expect(stdout.text).toMatch(new RegExp(`^Transform job ${NAME}: Completed\n`));
  });

  it('is quiet on standard error when it is not a terminal', async () => {
    const { job, sfn } = await runningThenCompleted();
    const stdout = new CapturedStream(false);
    const stderr = new CapturedStream(false);
    expect(await waitAndReport(job, { pollInterval: 0 }, { stdout, stderr })).toBe(0);
    expect(sfn.inputsOf('DescribeExecution')).toHaveLength(2);
    expect(stderr.text).toBe('');
    expect(stdout.text).toContain('objects:   4 completed, 0 failed, 0 skipped, of 4');
  });

  it('draws no bar with --json, and prints the final description as JSON', async () => {
    const { job } = await runningThenCompleted();
    const stdout = new CapturedStream(false);
    const stderr = new CapturedStream(true);
    expect(await waitAndReport(job, { pollInterval: 0, json: true }, { stdout, stderr })).toBe(0);
    expect(stderr.text).toBe('');
    expect(JSON.parse(stdout.text)).toMatchObject({
      TransformJobName: NAME,
      TransformJobStatus: 'Completed',
    });
  });
});
