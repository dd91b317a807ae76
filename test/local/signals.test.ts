import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT, runCli, TEST_MODEL } from '../support/cli';
import { partialFiles, processesOfRun, RUN_MARKER, waitFor } from '../support/run-processes';
import { makeTempDir, type TempDir } from '../support/tmp';

/**
 * `batch-transform run --local` stopped by a signal, or killed outright, as real processes: the CLI,
 * its sidecars and model servers. Every process of a run carries a marker in its environment (the
 * CLI passes its environment on), so the test finds them all in /proc, however they were started.
 */

const MARK = RUN_MARKER;

function rows(object: number, count: number): string {
  let s = '';
  for (let i = 0; i < count; i++) s += `${object},${i}\n`;
  return s;
}

describe.skipIf(process.platform !== 'linux')('a local run ended by a signal', () => {
  let dir: TempDir;
  let input: string;
  beforeAll(async () => {
    dir = await makeTempDir('bt-signals');
    input = join(dir.path, 'in');
    await mkdir(input, { recursive: true });
    for (let i = 0; i < 3; i++) await writeFile(join(input, `part-${i}.csv`), rows(i, 400));
  });
  afterAll(() => dir.remove());

  async function writeJob(name: string): Promise<{ file: string; out: string; work: string }> {
    const out = join(dir.path, name, 'out');
    const work = join(dir.path, name, 'work');
    const file = join(dir.path, `${name}.json`);
    await writeFile(
      file,
      JSON.stringify({
        TransformJobName: name,
        ModelName: 'test-model',
        BatchStrategy: 'SingleRecord',
        MaxConcurrentTransforms: 2,
        TransformInput: {
          DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `file://${input}/` } },
          ContentType: 'text/csv',
          SplitType: 'Line',
        },
        TransformOutput: { S3OutputPath: `file://${out}/`, AssembleWith: 'Line' },
        TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 2 },
      }),
    );
    return { file, out, work };
  }

  /** Starts a slow run (every record takes 20 ms) and resolves once outputs are being written. */
  async function startSlowRun(name: string, marker: string) {
    const job = await writeJob(name);
    const child = spawn(
      process.execPath,
      [CLI, 'run', job.file, '--local', '--model-command', TEST_MODEL, '--work-dir', job.work, '--json'],
      {
        cwd: ROOT,
        env: { ...process.env, [MARK]: marker, TEST_MODEL_LATENCY_MS: '20' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    await waitFor(
      'a partial output',
      async () => ((await partialFiles(join(dir.path, name), true)).length > 0 ? true : undefined),
      60_000,
    );
    return { ...job, child, exited, output: () => ({ stdout, stderr }) };
  }

  it.each(['SIGTERM', 'SIGHUP', 'SIGINT'] as const)(
    '%s stops the job: Stopped, exit 1, the --json line, no process of the run and no partial file left',
    async (signal) => {
      const marker = `${signal}-${process.pid}`;
      const run = await startSlowRun(`stop-${signal.toLowerCase()}`, marker);
      expect((await processesOfRun(marker)).length).toBeGreaterThanOrEqual(5); // CLI + 2 × (sidecar, model)
      run.child.kill(signal);
      const [code] = await run.exited;
      const { stdout, stderr } = run.output();
      expect(code, stderr).toBe(1);
      const last = JSON.parse(stdout.trim().split('\n').pop()!);
      expect(last.TransformJobStatus).toBe('Stopped');
      expect(await processesOfRun(marker)).toEqual([]);
      expect(await partialFiles(dir.path)).toEqual([]);
      expect(existsSync(join(run.work, `stop-${signal.toLowerCase()}.lock`))).toBe(false);
    },
    90_000,
  );

  it('after SIGKILL of the CLI its workers end by themselves, and the next run clears what was left', async () => {
    const marker = `SIGKILL-${process.pid}`;
    const run = await startSlowRun('killed', marker);
    run.child.kill('SIGKILL');
    await run.exited;
    // The sidecars see their pipe from the CLI close, stop, and end their models.
    await waitFor(
      'every process of the run to end',
      async () => ((await processesOfRun(marker)).length === 0 ? true : undefined),
      10_000,
    );
    // Nothing partial ever shows under the output location: writes are staged beside the work dir.
    expect(await partialFiles(run.out)).toEqual([]);

    const again = await runCli(
      ['run', run.file, '--local', '--model-command', TEST_MODEL, '--work-dir', run.work, '--json'],
      {
        timeoutMs: 60_000,
      },
    );
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout.trim().split('\n').pop()!).TransformJobStatus).toBe('Completed');
    expect(await partialFiles(dir.path)).toEqual([]);
    expect(existsSync(join(run.work, 'killed.lock'))).toBe(false);
    for (let i = 0; i < 3; i++)
      expect(await readFile(join(run.out, `part-${i}.csv.out`), 'utf8')).toBe(rows(i, 400));
  }, 120_000);
});
