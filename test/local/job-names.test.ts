import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobNameInUseError, lockJobName } from '../../src/local/job-name-lock';
import { CLI, ROOT, runCli, TEST_MODEL } from '../support/cli';
import { makeTempDir, type TempDir } from '../support/tmp';

/** Local job names: unique while their job runs, free again once it ended, never sharing scratch. */

let dir: TempDir;
beforeAll(async () => {
  dir = await makeTempDir('bt-names');
});
afterAll(() => dir.remove());

/** A PID that no process has: one that just exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid!;
}

describe('the job name lock', () => {
  it('refuses a name its own live process holds, naming the job and the process', async () => {
    const path = join(dir.path, 'locks', 'held.lock');
    const lock = await lockJobName(path, 'held');
    await expect(lockJobName(path, 'held')).rejects.toThrow(JobNameInUseError);
    await expect(lockJobName(path, 'held')).rejects.toThrow(
      `named "held" is running (process ${process.pid})`,
    );
    await lock.release();
    const again = await lockJobName(path, 'held');
    expect(again.tookOverFromDeadRun).toBe(false);
    await again.release();
  });

  it('takes over a lock whose process is gone, and says so', async () => {
    const path = join(dir.path, 'locks', 'stale.lock');
    await mkdir(join(dir.path, 'locks'), { recursive: true });
    await writeFile(path, `${deadPid()}\n`);
    const lock = await lockJobName(path, 'stale');
    expect(lock.tookOverFromDeadRun).toBe(true);
    expect(await readFile(path, 'utf8')).toBe(`${process.pid}\n`);
    await lock.release();
    expect(existsSync(path)).toBe(false);
  });

  it('waits out an empty lock (being written), and takes it over once it has stayed empty too long', async () => {
    const path = join(dir.path, 'locks', 'empty.lock');
    await mkdir(join(dir.path, 'locks'), { recursive: true });
    await writeFile(path, '');
    await expect(lockJobName(path, 'empty')).rejects.toThrow(JobNameInUseError);
    const old = new Date(Date.now() - 60_000);
    await utimes(path, old, old);
    const lock = await lockJobName(path, 'empty');
    expect(lock.tookOverFromDeadRun).toBe(true);
    await lock.release();
  });
});

describe('two local runs of one name', () => {
  async function writeJob(name: string, tag: string) {
    const input = join(dir.path, tag, 'in');
    const out = join(dir.path, tag, 'out');
    await mkdir(input, { recursive: true });
    await writeFile(
      join(input, `${tag}.csv`),
      Array.from({ length: 200 }, (_, i) => `${tag},${i}\n`).join(''),
    );
    const file = join(dir.path, `${tag}.json`);
    await writeFile(
      file,
      JSON.stringify({
        TransformJobName: name,
        ModelName: 'test-model',
        BatchStrategy: 'SingleRecord',
        TransformInput: {
          DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `file://${input}/` } },
          ContentType: 'text/csv',
          SplitType: 'Line',
        },
        TransformOutput: { S3OutputPath: `file://${out}/`, AssembleWith: 'Line' },
        TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
      }),
    );
    return { file, out, tag };
  }

  it('refuses the second while the first runs (exit 2, a clear error); the first ends with its own outputs', async () => {
    const work = join(dir.path, 'work-concurrent');
    const a = await writeJob('same-name', 'a');
    const b = await writeJob('same-name', 'b');
    const args = (file: string) => [
      'run',
      file,
      '--local',
      '--model-command',
      TEST_MODEL,
      '--work-dir',
      work,
      '--json',
    ];
    // A is slow (every record 20 ms), so it is still running when B starts.
    const first = spawn(process.execPath, [CLI, ...args(a.file)], {
      cwd: ROOT,
      env: { ...process.env, TEST_MODEL_LATENCY_MS: '20' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let firstOut = '';
    first.stdout.on('data', (d) => {
      firstOut += d;
    });
    const firstExit = once(first, 'exit');
    // Wait until A holds the name (its lock exists), then start B.
    while (!existsSync(join(work, 'same-name.lock'))) await new Promise((r) => setTimeout(r, 50));
    const second = await runCli(args(b.file));
    expect(second.code).toBe(2);
    expect(second.stderr).toContain('a local transform job named "same-name" is running');
    expect(second.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(b.out)).toBe(false);

    const [code] = await firstExit;
    expect(code).toBe(0);
    const description = JSON.parse(firstOut.trim().split('\n').pop()!);
    expect(description.TransformJobStatus).toBe('Completed');
    expect(description.TransformOutput.S3OutputPath).toBe(`file://${a.out}/`);
    expect((await readFile(join(a.out, 'a.csv.out'), 'utf8')).split('\n')[0]).toBe('a,0');
  }, 120_000);

  it('runs a name again once its job has ended, the second run replacing the first', async () => {
    const work = join(dir.path, 'work-again');
    const c = await writeJob('again', 'c');
    for (let i = 0; i < 2; i++) {
      const r = await runCli([
        'run',
        c.file,
        '--local',
        '--model-command',
        TEST_MODEL,
        '--work-dir',
        work,
        '--json',
      ]);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(existsSync(join(work, 'again.lock'))).toBe(false);
    expect(existsSync(join(work, 'again', 'logs'))).toBe(true);
  }, 120_000);
});
