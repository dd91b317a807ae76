import { existsSync } from 'node:fs';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { runLocalJob } from '../../src/local/runner';
import { FileStorage } from '../../src/storage/file';
import type { StartedModel } from '../fixtures/models/start';
import { model } from '../sidecar/harness';
import { waitFor } from '../support/run-processes';
import { makeTempDir, type TempDir } from '../support/tmp';

// StopTransformJob: "When you stop a batch transform job before it is completed, Amazon SageMaker
// doesn't store the job's output in Amazon S3." A local run stopped after one object completed, with
// a real sidecar and model process.

let tmp: TempDir;
let slow: StartedModel;
const cleanups: Array<() => Promise<unknown>> = [];
beforeAll(async () => {
  tmp = await makeTempDir('local-stop-');
  slow = await model({ TEST_MODEL_SLOW_MARKER: 'SLOWME', TEST_MODEL_SLOW_MS: '30000' }, cleanups);
});
afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
  await tmp?.remove();
});

/** Runs a job whose a.csv and c.csv complete and whose b.csv hangs, and stops it once they have. */
async function stoppedRun(name: string, extensions: Record<string, unknown>) {
  const input = join(tmp.path, name, 'in');
  const output = join(tmp.path, name, 'out');
  await mkdir(input, { recursive: true });
  await mkdir(output, { recursive: true });
  await writeFile(join(input, 'a.csv'), 'a,1\na,2\na,3\na,4\n');
  await writeFile(join(input, 'b.csv'), 'SLOWME,1\n');
  await writeFile(join(input, 'c.csv'), 'c,1\n');
  // Beside the outputs: a file the job never writes, and b.csv.out from an earlier job (this job
  // never completes b.csv).
  await writeFile(join(output, 'notes.txt'), 'mine');
  await writeFile(join(output, 'b.csv.out'), 'from an earlier job');
  const longAgo = new Date('2020-01-01T00:00:00Z');
  await utimes(join(output, 'b.csv.out'), longAgo, longAgo);
  const stop = new AbortController();
  const run = runLocalJob({
    request: {
      TransformJobName: name,
      ModelName: 'test-model',
      BatchStrategy: 'MultiRecord',
      MaxConcurrentTransforms: 2,
      TransformInput: {
        DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `file://${input}/` } },
        ContentType: 'text/csv',
        SplitType: 'Line',
      },
      TransformOutput: { S3OutputPath: `file://${output}/`, AssembleWith: 'Line' },
      TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
      Extensions: extensions,
    },
    storage: new FileStorage(),
    model: { kind: 'url', url: slow.url },
    workRoot: `file://${join(tmp.path, name, 'work')}/`,
    signal: stop.signal,
  });
  const done = () => ['a.csv.out', 'c.csv.out'].every((f) => existsSync(join(output, f)));
  await waitFor('a.csv.out and c.csv.out', async () => (done() ? true : undefined), 30_000);
  stop.abort();
  const { description } = await run;
  return { description, left: (await readdir(output)).sort() };
}

describe('a local run that is stopped', () => {
  it("removes the outputs it completed, and keeps every file it did not write (SageMaker's StopTransformJob)", async ({
    expect,
  }) => {
    const { description, left } = await stoppedRun('stop-default', {});
    expect(description.TransformJobStatus).toBe('Stopped');
    expect(left).toEqual(['b.csv.out', 'notes.txt']);
  });

  it('keeps the outputs it completed with Extensions.KeepOutputsOnStop', async ({ expect }) => {
    const { description, left } = await stoppedRun('stop-keep', { KeepOutputsOnStop: true });
    expect(description.TransformJobStatus).toBe('Stopped');
    expect(left).toEqual(['a.csv.out', 'b.csv.out', 'c.csv.out', 'notes.txt']);
  });
});
