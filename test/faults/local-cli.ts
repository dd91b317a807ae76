/**
 * The local-mode slice of `npm run faults`: what happens to `batch-transform run --local` itself
 * (not to a model or S3) as a real CLI process with its sidecars and model processes:
 *
 *   cliSigterm       SIGTERM to the CLI mid-job: Stopped, exit 1, no process and no partial file left
 *   cliSigkillRerun  SIGKILL to the CLI mid-job: its processes end by themselves, nothing partial
 *                    under the output; a rerun of the name Completes with exact outputs, nothing left
 *   sameName         a second run of a running name: refused (exit 2); the first Completes with its
 *                    own outputs
 *
 * Every run draws its instance count (1–3) and when the signal comes (after 0–1.5 s of writing)
 * from the seed. Linux only (processes are found in /proc).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ROOT, runCli, TEST_MODEL } from '../support/cli';
import { partialFiles, processesOfRun, RUN_MARKER, waitFor } from '../support/run-processes';

const OBJECTS = 4;
const ROWS = 300;

export const LOCAL_CLI_KINDS = {
  cliSigterm: 'SIGTERM to `run --local` mid-job',
  cliSigkillRerun: 'SIGKILL to `run --local` mid-job, then a rerun of the name',
  sameName: 'a second `run --local` of a running job name',
} as const;
export type LocalCliKind = keyof typeof LOCAL_CLI_KINDS;

export interface LocalCliReport {
  readonly kind: LocalCliKind;
  readonly correct: boolean;
  readonly problems: string[];
  /** Signal to exit (SIGTERM), or to the last process of the run gone (SIGKILL), or B's refusal time. */
  readonly ms: number;
  readonly processesLeft: number;
  readonly partialsLeft: number;
}

function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rows = (object: number) => Array.from({ length: ROWS }, (_, i) => `${object},${i}\n`).join('');

/** Runs one scenario in a fresh folder; every invariant broken is a problem. */
export async function runLocalCliScenario(kind: LocalCliKind, seed: number): Promise<LocalCliReport> {
  const random = mulberry(seed);
  const base = join(tmpdir(), `faults-local-cli-${process.pid}-${seed}`);
  const work = join(base, 'work');
  const input = join(base, 'in');
  await mkdir(input, { recursive: true });
  for (let i = 0; i < OBJECTS; i++) await writeFile(join(input, `part-${i}.csv`), rows(i));
  const instances = 1 + Math.floor(random() * 3);
  const job = async (name: string, out: string) => {
    const file = join(base, `${name}-${out}.json`);
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
        TransformOutput: { S3OutputPath: `file://${join(base, out)}/`, AssembleWith: 'Line' },
        TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: instances },
      }),
    );
    return file;
  };
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
  const start = (file: string, marker: string) => {
    const child = spawn(process.execPath, [CLI, ...args(file)], {
      cwd: ROOT,
      env: { ...process.env, [RUN_MARKER]: marker, TEST_MODEL_LATENCY_MS: '15' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.resume();
    return { child, exited: once(child, 'exit') as Promise<[number | null]>, stdout: () => stdout };
  };
  const writing = () =>
    waitFor(
      'outputs being written',
      async () => ((await partialFiles(base, true)).length > 0 ? true : undefined),
      60_000,
    );
  const problems: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) problems.push(what);
  };
  const status = (stdout: string) => {
    try {
      return (JSON.parse(stdout.trim().split('\n').pop() ?? '') as { TransformJobStatus?: string })
        .TransformJobStatus;
    } catch {
      return undefined;
    }
  };
  const outputsExact = async (out: string) => {
    for (let i = 0; i < OBJECTS; i++) {
      const path = join(base, out, `part-${i}.csv.out`);
      if (!existsSync(path) || (await readFile(path, 'utf8')) !== rows(i)) return false;
    }
    return true;
  };
  const marker = `${kind}-${seed}`;
  let ms = 0;
  try {
    if (kind === 'cliSigterm' || kind === 'cliSigkillRerun') {
      const file = await job(kind, 'out');
      const run = start(file, marker);
      await writing();
      await new Promise((r) => setTimeout(r, Math.floor(random() * 1500)));
      const signalled = Date.now();
      run.child.kill(kind === 'cliSigterm' ? 'SIGTERM' : 'SIGKILL');
      const [code] = await run.exited;
      if (kind === 'cliSigterm') {
        ms = Date.now() - signalled;
        check(code === 1, `exit ${code}, expected 1`);
        check(
          status(run.stdout()) === 'Stopped',
          `last JSON line status ${status(run.stdout())}, expected Stopped`,
        );
      } else {
        await waitFor(
          "the run's processes to end",
          async () => ((await processesOfRun(marker)).length === 0 ? true : undefined),
          15_000,
        ).catch(() => {});
        ms = Date.now() - signalled;
        check(
          (await partialFiles(join(base, 'out'))).length === 0,
          'a partial file under the output location',
        );
        const again = await runCli(args(file), { timeoutMs: 120_000 });
        check(again.code === 0, `rerun exit ${again.code}, expected 0`);
        check(await outputsExact('out'), 'rerun outputs differ from the inputs');
        check(!existsSync(join(work, `${kind}.lock`)), 'the lock is left after the rerun');
      }
    } else {
      const a = start(await job('same-name', 'out-a'), marker);
      await waitFor(
        'the first run to hold the name',
        async () => (existsSync(join(work, 'same-name.lock')) ? true : undefined),
        30_000,
      );
      const t = Date.now();
      const b = await runCli(args(await job('same-name', 'out-b')), { timeoutMs: 60_000 });
      ms = Date.now() - t;
      check(b.code === 2, `second run exit ${b.code}, expected 2`);
      check(!existsSync(join(base, 'out-b')), 'the refused run wrote outputs');
      const [code] = await a.exited;
      check(
        code === 0 && status(a.stdout()) === 'Completed',
        `first run exit ${code}, ${status(a.stdout())}`,
      );
      check(await outputsExact('out-a'), "the first run's outputs differ from its inputs");
    }
    const left = await processesOfRun(marker);
    const partials = await partialFiles(base);
    check(left.length === 0, `${left.length} process(es) of the run left`);
    check(partials.length === 0, `${partials.length} partial file(s) left`);
    for (const pid of left) process.kill(pid, 'SIGKILL');
    return {
      kind,
      correct: problems.length === 0,
      problems,
      ms,
      processesLeft: left.length,
      partialsLeft: partials.length,
    };
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}
