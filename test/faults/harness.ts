/**
 * The machinery of the fault-injection harness: a dataset whose every record names itself, a job over
 * it on the loopback S3 server, one run of it on a deployment (deployments.ts: `batch-transform run
 * --local` as a child process, or the synthesized state machine run locally), the processes of a run
 * found through /proc so they can be killed, and the checks every run must pass whatever was injected:
 *
 *   - the final status is the one the scenario calls right;
 *   - each `.out` is byte-identical to the fault-free run's, or absent;
 *   - no record is lost or duplicated (records are counted by id in every output);
 *   - after cleanup no multipart upload, no scratch object and no worker process remains;
 *   - a failure reason names an object and the cause.
 *
 * Scenarios (scenarios.ts) say what to inject and what is right; run.ts and faults.test.ts drive them.
 */
import type { TransformJobDescription } from '../../src/contract/description';
import { readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Plan } from '../../src/contract/plan';
import {
  countIncompleteUploads,
  type FaultRequest,
  type FaultRule,
  type S3Harness,
} from '../support/s3-server';

export const INPUT_PREFIX = 'in/';

// ---------------------------------------------------------------------------------------------
// Seeded randomness (every choice a run makes comes from here, so `--seed` replays it)

export interface Rng {
  /** [0, 1) */
  next(): number;
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
}

export function rng(seed: number): Rng {
  let a = seed >>> 0 || 0x9e3779b9;
  const next = () => {
    // mulberry32
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (items) => items[Math.floor(next() * items.length)]!,
    chance: (p) => next() < p,
  };
}

// ---------------------------------------------------------------------------------------------
// The dataset

export interface InputObject {
  /** Key relative to the input prefix (`sub/c.csv`); the output is `<out>/<relativeKey>.out`. */
  readonly relativeKey: string;
  readonly body: Buffer;
  /** Record ids in order; record i is the line `<ids[i]>,<payload>`. */
  readonly ids: readonly string[];
  /** Byte offset of each record in the object. */
  readonly offsets: readonly number[];
}

export interface Dataset {
  readonly objects: readonly InputObject[];
  readonly records: number;
}

/**
 * CSV objects whose every record starts with a unique id (`b-0001234`). The test model upper-cases
 * what it is sent, so an output line names the record it came from: lost and duplicated records are
 * countable, and a record's id (plus the comma) is a marker the model can be told to fail on.
 * `bigMiB` adds an object big enough for multipart uploads (8 MiB parts) and for shards.
 */
export function makeDataset(seed: number, opts: { bigMiB: number }): Dataset {
  const r = rng(seed);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const make = (relativeKey: string, tag: string, count: number): InputObject => {
    const ids: string[] = [];
    const offsets: number[] = [];
    const lines: string[] = [];
    let at = 0;
    for (let i = 0; i < count; i++) {
      const id = `${tag}-${String(i).padStart(7, '0')}`;
      let payload = '';
      const n = r.int(0, 60);
      for (let k = 0; k < n; k++) payload += letters[r.int(0, 25)];
      const line = `${id},${payload}\n`;
      ids.push(id);
      offsets.push(at);
      lines.push(line);
      at += line.length;
    }
    return { relativeKey, body: Buffer.from(lines.join('')), ids, offsets };
  };
  const objects = [make('a.csv', 'a', 300), make('b.csv', 'b', 3_000), make('sub/c.csv', 'c', 800)];
  // ~44 bytes a record on average.
  if (opts.bigMiB > 0) objects.push(make('big.csv', 'g', Math.round((opts.bigMiB * 1_048_576) / 44)));
  return { objects, records: objects.reduce((s, o) => s + o.ids.length, 0) };
}

/** The fault-free answer, computed without running anything: the test model upper-cases each line. */
export const expectedOutput = (o: InputObject) =>
  Buffer.from(o.body.toString('latin1').toUpperCase(), 'latin1');

// ---------------------------------------------------------------------------------------------
// Where a job runs

/**
 * A place to run jobs: the buckets it uses on the loopback S3 server and how it runs one job.
 * deployments.ts has the two: the local runner (CLI) and the synthesized state machine.
 */
export interface Deployment {
  readonly mode: 'local' | 'sfn';
  /** Input under `s3://<dataBucket>/in/`, outputs under `s3://<dataBucket>/out/<run>/`. */
  readonly dataBucket: string;
  readonly workBucket: string;
  /** A job's work location (plan, shards, summary) as a key prefix of workBucket. */
  workPrefix(jobName: string): string;
  readonly modelName: string;
  /**
   * Runs one job to its end. `env` reaches the model and sidecar processes of the job (FAULTS_RUN
   * and the test model's knobs).
   */
  execute(request: unknown, jobName: string, env: Readonly<Record<string, string>>): Promise<Execution>;
}

export interface Execution {
  readonly description?: TransformJobDescription;
  /** The CLI's exit code (local mode). */
  readonly exitCode?: number | null;
  /** What the run said when it printed no result: the CLI's stderr, the execution's error. */
  readonly diagnostics: string;
  /** The state machine's execution status (sfn mode). */
  readonly executionStatus?: 'SUCCEEDED' | 'FAILED';
}

// ---------------------------------------------------------------------------------------------
// The job

/** How the input is laid out over workers: whole objects on 2 workers, or big.csv cut into shards on 3. */
export type Layout = 'whole' | 'sharded';

export interface JobOptions {
  readonly layout: Layout;
  readonly modelClient?: { InvocationsTimeoutInSeconds?: number; InvocationsMaxRetries?: number };
  readonly extensions?: Record<string, unknown>;
}

export function jobRequest(d: Deployment, name: string, outPrefix: string, o: JobOptions) {
  return {
    TransformJobName: name,
    ModelName: d.modelName,
    BatchStrategy: 'MultiRecord',
    MaxPayloadInMB: 1,
    MaxConcurrentTransforms: 3,
    ...(o.modelClient ? { ModelClientConfig: o.modelClient } : {}),
    TransformInput: {
      DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `s3://${d.dataBucket}/${INPUT_PREFIX}` } },
      ContentType: 'text/csv',
      SplitType: 'Line',
    },
    TransformOutput: { S3OutputPath: `s3://${d.dataBucket}/${outPrefix}`, AssembleWith: 'Line' },
    TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: o.layout === 'whole' ? 2 : 3 },
    Extensions: { ShardMinSizeInMB: o.layout === 'whole' ? 0 : 4, ...o.extensions },
  };
}

// ---------------------------------------------------------------------------------------------
// Processes of a run, through /proc (Linux)

export interface RunProcess {
  readonly pid: number;
  readonly role: 'sidecar' | 'model' | 'other';
  readonly env: Readonly<Record<string, string>>;
}

/** Every live process whose environment carries FAULTS_RUN=<runId>. */
export async function runProcesses(runId: string): Promise<RunProcess[]> {
  const out: RunProcess[] = [];
  const marker = `FAULTS_RUN=${runId}`;
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const raw = await readFile(`/proc/${entry}/environ`, 'latin1');
      if (!raw.split('\0').includes(marker)) continue;
      const status = await readFile(`/proc/${entry}/status`, 'latin1');
      if (/^State:\s+Z/m.test(status)) continue; // exited, not yet reaped
      const argv = (await readFile(`/proc/${entry}/cmdline`, 'latin1')).split('\0');
      const env = Object.fromEntries(
        raw
          .split('\0')
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
      );
      // The node process itself, not a shell that started it (`--model-command` runs through sh), and
      // not the CLI, whose `--model-command "node … test-model.ts"` argument names the model too.
      const node = /(^|\/)node$/.test(argv[0] ?? '');
      const script = (name: string) => argv.some((a) => a === name || a.endsWith(`/${name}`));
      const role = !node
        ? 'other'
        : // The TypeScript entry, or the bundle a local run starts (src/local/sidecar-bundle.ts).
          script('containers/sidecar/src/main.ts') || script('sidecar.mjs')
          ? 'sidecar'
          : script('test/fixtures/models/test-model.ts')
            ? 'model'
            : 'other';
      out.push({ pid: Number(entry), role, env });
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return out;
}

/** The sidecar process of one partition of a run. */
export async function sidecarOf(runId: string, partition: number): Promise<RunProcess | undefined> {
  return (await runProcesses(runId)).find(
    (p) => p.role === 'sidecar' && p.env.PARTITION_INDEX === String(partition),
  );
}

/** The model process a partition's sidecar talks to (matched by port). */
export async function modelOf(runId: string, partition: number): Promise<RunProcess | undefined> {
  const all = await runProcesses(runId);
  const sidecar = all.find((p) => p.role === 'sidecar' && p.env.PARTITION_INDEX === String(partition));
  const port = sidecar?.env.MODEL_URL?.split(':').pop();
  if (!port) return undefined;
  return all.find((p) => p.role === 'model' && p.env.SAGEMAKER_BIND_TO_PORT === port);
}

export function kill(pid: number, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** A run's plan.json, read from the S3 server's store (not through the API, which a fault rule may be failing). */
export async function readPlan(s3: S3Harness, d: Deployment, jobName: string): Promise<Plan | undefined> {
  const path = join(
    s3.directory,
    d.workBucket,
    ...`${d.workPrefix(jobName)}plan.json._S3rver_object`.split('/'),
  );
  return readFile(path, 'utf8').then(
    (t) => JSON.parse(t) as Plan,
    () => undefined,
  );
}

// ---------------------------------------------------------------------------------------------
// One run

/** What a scenario can do while its job runs. */
export interface RunContext {
  readonly s3: S3Harness;
  readonly deployment: Deployment;
  readonly runId: string;
  readonly jobName: string;
  /** Key prefix of the run's outputs in the data bucket. */
  readonly outPrefix: string;
  readonly data: Dataset;
  readonly rng: Rng;
  /** Set the S3 fault rule for this run (cleared when the run ends). */
  setRule(rule: FaultRule | undefined): void;
  /** Called for every S3 request while the run lasts (after the rule decided). */
  onRequest(listener: (request: FaultRequest) => void): void;
  /** Count injected faults that the S3 front does not count itself. */
  injected(n?: number): void;
  /** A line for the report: what exactly was injected. */
  note(text: string): void;
  /** True once the run has ended. */
  readonly finished: () => boolean;
}

export interface RunOutcome extends Execution {
  readonly ms: number;
  readonly faults: number;
  readonly notes: readonly string[];
  /** ms from the first input GetObject to the last output write, seen at the S3 front. */
  readonly transformWindowMs?: number;
  /** S3 requests the run made (every attempt). */
  readonly requests: number;
}

/**
 * Runs the job once on the deployment while `arm` injects faults. Checks come after (verify).
 * FAULTS_RUN=<runId> marks every model and sidecar process of the run for /proc lookups.
 */
export async function runJob(
  s3: S3Harness,
  d: Deployment,
  data: Dataset,
  runId: string,
  job: JobOptions,
  arm: (ctx: RunContext) => void | Promise<void>,
  opts: { env?: Record<string, string>; seed: number; countS3Faults?: boolean },
): Promise<RunOutcome> {
  const outPrefix = `out/${runId}/`;
  let rule: FaultRule | undefined;
  const listeners: Array<(r: FaultRequest) => void> = [];
  let firstInput: number | undefined;
  let lastOutput: number | undefined;
  let manual = 0;
  const notes: string[] = [];
  let done = false;
  let requests = 0;
  s3.faults.clear();
  s3.faults.set((request) => {
    if (done) return undefined;
    requests++;
    const fault = rule?.(request);
    if (request.operation === 'GetObject' && request.key.startsWith(INPUT_PREFIX)) firstInput ??= Date.now();
    if (
      request.key.startsWith(outPrefix) &&
      ['PutObject', 'CompleteMultipartUpload'].includes(request.operation)
    )
      lastOutput = Date.now();
    for (const l of listeners) l(request);
    return fault;
  });
  const ctx: RunContext = {
    s3,
    deployment: d,
    runId,
    jobName: runId,
    outPrefix,
    data,
    rng: rng(opts.seed),
    setRule: (r) => {
      rule = r;
    },
    onRequest: (l) => listeners.push(l),
    injected: (n = 1) => {
      manual += n;
    },
    note: (t) => notes.push(t),
    finished: () => done,
  };
  const started = Date.now();
  let execution: Execution;
  try {
    const running = d.execute(jobRequest(d, runId, outPrefix, job), runId, {
      TEST_MODEL_UPPERCASE: '1',
      TEST_MODEL_RECORD_LIMIT: '0',
      FAULTS_RUN: runId,
      ...opts.env,
    });
    await arm(ctx);
    execution = await running;
  } finally {
    done = true;
  }
  const ms = Date.now() - started;
  const s3Faults = opts.countS3Faults === false ? 0 : s3.faults.injected.total;
  s3.faults.clear();
  return {
    ...execution,
    ms,
    faults: s3Faults + manual,
    notes,
    requests,
    ...(firstInput && lastOutput ? { transformWindowMs: lastOutput - firstInput } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Checks

export interface Expectation {
  /** The right final status; 'either' when the fault may land after the work it could hurt. */
  readonly status: 'Completed' | 'Failed' | 'either';
  /** Objects that must end with their output (those the fault cannot touch). */
  readonly mustComplete?: readonly string[];
  /** A Failed job's reason must match this (the cause, in words). */
  readonly cause?: RegExp;
  /**
   * Records the model refused and MaxFailedRecordsPerObject isolated: missing from `.out`, listed in
   * `.errors.jsonl` (relativeKey → record ids).
   */
  readonly isolated?: ReadonlyMap<string, readonly string[]>;
  /** How many model 5xx answers the job's counters must show (when the scenario knows exactly). */
  readonly modelErrors5xx?: number;
}

export interface Verdict {
  readonly status: string;
  readonly problems: string[];
  readonly lost: number;
  readonly duplicated: number;
  readonly uploadsLeft: number;
  readonly scratchLeft: number;
  readonly processesLeft: number;
  readonly outputsPresent: number;
}

/** Record ids in an output, in order (the model upper-cased them). */
function outputIds(body: Buffer): string[] {
  const ids: string[] = [];
  for (const line of body.toString('latin1').split('\n')) {
    if (line === '') continue;
    const comma = line.indexOf(',');
    ids.push((comma < 0 ? line : line.slice(0, comma)).toLowerCase());
  }
  return ids;
}

/** Lost and duplicated records of one object's output, by id. */
function countRecords(
  expected: readonly string[],
  got: readonly string[],
): { lost: number; duplicated: number } {
  const seen = new Map<string, number>();
  for (const id of got) seen.set(id, (seen.get(id) ?? 0) + 1);
  let lost = 0;
  let duplicated = 0;
  for (const id of expected) {
    const n = seen.get(id) ?? 0;
    if (n === 0) lost++;
    if (n > 1) duplicated += n - 1;
  }
  return { lost, duplicated };
}

async function listKeys(s3: S3Harness, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of s3.storage.list(`s3://${bucket}/${prefix}`))
    keys.push(o.uri.slice(`s3://${bucket}/`.length));
  return keys;
}

/**
 * Every invariant of a run. `baseline` is the fault-free run's output per relativeKey. Run after the
 * run ended, with no fault rule set.
 */
export async function verify(
  s3: S3Harness,
  d: Deployment,
  data: Dataset,
  run: RunOutcome,
  runId: string,
  baseline: ReadonlyMap<string, Buffer>,
  expect: Expectation,
): Promise<Verdict> {
  const problems: string[] = [];
  const desc = run.description;
  const status = desc?.TransformJobStatus ?? 'no result';
  if (!desc) {
    problems.push(`the run gave no DescribeTransformJob result: ${run.diagnostics.slice(0, 3000)}`);
  } else {
    if (expect.status !== 'either' && desc.TransformJobStatus !== expect.status)
      problems.push(
        `status ${desc.TransformJobStatus}, expected ${expect.status}: ${desc.FailureReason ?? ''}`,
      );
    const ok = desc.TransformJobStatus === 'Completed';
    if (run.exitCode !== undefined && run.exitCode !== (ok ? 0 : 1))
      problems.push(`exit code ${run.exitCode} for a ${desc.TransformJobStatus} job`);
    if (run.executionStatus !== undefined && run.executionStatus !== (ok ? 'SUCCEEDED' : 'FAILED'))
      problems.push(`execution ${run.executionStatus} for a ${desc.TransformJobStatus} job`);
  }

  const bucket = d.dataBucket;
  const outPrefix = `out/${runId}/`;
  const outKeys = new Set(await listKeys(s3, bucket, outPrefix));
  let lost = 0;
  let duplicated = 0;
  let present = 0;
  const missing: InputObject[] = [];
  for (const o of data.objects) {
    const key = `${outPrefix}${o.relativeKey}.out`;
    const errorsKey = `${outPrefix}${o.relativeKey}.errors.jsonl`;
    const isolated = expect.isolated?.get(o.relativeKey) ?? [];
    const hasOut = outKeys.delete(key);
    const hasErrors = outKeys.delete(errorsKey);
    if (!hasOut) {
      missing.push(o);
      if (hasErrors) problems.push(`${o.relativeKey}: an .errors.jsonl without its .out`);
      continue;
    }
    present++;
    const got = await s3.storage.readAll(`s3://${bucket}/${key}`);
    const want =
      isolated.length === 0
        ? baseline.get(o.relativeKey)!
        : withoutRecords(baseline.get(o.relativeKey)!, new Set(isolated));
    if (!got.equals(want)) {
      const c = countRecords(
        o.ids.filter((id) => !isolated.includes(id)),
        outputIds(got),
      );
      lost += c.lost;
      duplicated += c.duplicated;
      problems.push(
        `${o.relativeKey}.out differs from the fault-free run's (${got.length} vs ${want.length} bytes; ${c.lost} records lost, ${c.duplicated} duplicated)`,
      );
    }
    if (isolated.length > 0) {
      if (!hasErrors) {
        problems.push(`${o.relativeKey}: isolated records but no .errors.jsonl`);
      } else {
        const lines = (await s3.storage.readAll(`s3://${bucket}/${errorsKey}`))
          .toString('utf8')
          .trim()
          .split('\n');
        const offsets = lines.map((l) => (JSON.parse(l) as { offset: number }).offset).sort((a, b) => a - b);
        const wantOffsets = isolated.map((id) => o.offsets[o.ids.indexOf(id)]!).sort((a, b) => a - b);
        if (offsets.join() !== wantOffsets.join())
          problems.push(
            `${o.relativeKey}.errors.jsonl lists the records at ${offsets}, expected ${wantOffsets}`,
          );
      }
    } else if (hasErrors) {
      problems.push(`${o.relativeKey}: an unexpected .errors.jsonl`);
    }
  }
  for (const k of outKeys) problems.push(`an unexpected object under the output prefix: ${k}`);

  for (const key of expect.mustComplete ?? []) {
    if (missing.some((m) => m.relativeKey === key))
      problems.push(`${key} has no output, though the fault could not touch it`);
  }
  if (desc?.TransformJobStatus === 'Completed') {
    for (const m of missing) {
      lost += m.ids.length;
      problems.push(`a Completed job left ${m.relativeKey} without output (${m.ids.length} records lost)`);
    }
    const isolatedCount = [...(expect.isolated?.values() ?? [])].reduce((s, ids) => s + ids.length, 0);
    if (
      desc.Progress.records !== data.records - isolatedCount ||
      desc.Progress.failedRecords !== isolatedCount
    )
      problems.push(
        `Progress counts ${desc.Progress.records} records and ${desc.Progress.failedRecords} failed; the input holds ${data.records}, ${isolatedCount} isolated`,
      );
  }
  if (desc?.TransformJobStatus === 'Failed') {
    const reason = desc.FailureReason ?? '';
    const named = missing.filter((m) => reason.includes(`s3://${bucket}/${INPUT_PREFIX}${m.relativeKey}`));
    if (missing.length === 0) problems.push('a Failed job wrote every output');
    else if (named.length === 0)
      problems.push(`the failure reason names no object that failed: ${reason.slice(0, 300)}`);
    if (expect.cause && !expect.cause.test(reason))
      problems.push(`the failure reason does not give the cause (${expect.cause}): ${reason.slice(0, 300)}`);
  }
  if (expect.modelErrors5xx !== undefined && desc && desc.Progress.modelErrors5xx !== expect.modelErrors5xx)
    problems.push(
      `Progress counts ${desc.Progress.modelErrors5xx} model 5xx answers; ${expect.modelErrors5xx} were injected`,
    );

  let uploadsLeft = await countIncompleteUploads(s3, d.dataBucket);
  if (d.workBucket !== d.dataBucket) uploadsLeft += await countIncompleteUploads(s3, d.workBucket);
  if (uploadsLeft > 0) problems.push(`${uploadsLeft} multipart upload(s) left behind`);
  const scratch = await listKeys(s3, d.workBucket, `${d.workPrefix(runId)}shards/`);
  if (scratch.length > 0)
    problems.push(`${scratch.length} scratch object(s) left: ${scratch.slice(0, 3).join(', ')}`);
  const procs = (await runProcesses(runId)).filter((p) => p.role !== 'other');
  if (procs.length > 0) {
    problems.push(
      `${procs.length} process(es) of the run still alive: ${procs.map((p) => `${p.role} ${p.pid}`).join(', ')}`,
    );
    for (const p of procs) kill(p.pid);
  }
  return {
    status,
    problems,
    lost,
    duplicated,
    uploadsLeft,
    scratchLeft: scratch.length,
    processesLeft: procs.length,
    outputsPresent: present,
  };
}

/** The output with the lines of the given record ids removed. */
function withoutRecords(output: Buffer, ids: ReadonlySet<string>): Buffer {
  const lines = output.toString('latin1').split('\n');
  const kept = lines.filter((l) => !ids.has(l.slice(0, l.indexOf(',')).toLowerCase()));
  return Buffer.from(kept.join('\n'), 'latin1');
}

/** Removes what a run wrote (outputs, work location, leftovers already counted) once it is checked. */
export async function removeRun(s3: S3Harness, d: Deployment, runId: string): Promise<void> {
  // Uploads a faulty run left (already counted against it) would be counted against the next run too.
  for (const bucket of new Set([d.dataBucket, d.workBucket])) {
    for await (const u of s3.storage.listIncompleteUploads(`s3://${bucket}/`))
      await s3.storage.abortIncompleteUpload(u);
  }
  for (const [bucket, prefix] of [
    [d.dataBucket, `out/${runId}/`],
    [d.workBucket, d.workPrefix(runId)],
  ] as const) {
    for (const key of await listKeys(s3, bucket, prefix)) await s3.storage.delete(`s3://${bucket}/${key}`);
  }
  // The local runner keeps each job's logs in a temp folder (`bt-<job>-…`); these runs are checked.
  const tmp = tmpdir();
  for (const entry of await readdir(tmp).catch(() => [] as string[])) {
    if (entry.startsWith(`bt-${runId}-`)) await rm(join(tmp, entry), { recursive: true, force: true });
  }
}
