import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleSidecar } from '../containers/sidecar/bundle';
import { assembleStage } from '../src/lifecycle/assemble';
import { cleanupStage } from '../src/lifecycle/cleanup';
import { finalizeStage } from '../src/lifecycle/finalize';
import { readJson } from '../src/storage/json';
import { planStage } from '../src/lifecycle/plan';
import { validateStage } from '../src/lifecycle/validate';
import { runLocalJob } from '../src/local/runner';
import { resultUri } from '../src/contract/layout';
import type { PartitionResult } from '../src/contract/results';
import { FileStorage } from '../src/storage/file';
import type { Storage } from '../src/storage/storage';

const PROBE = fileURLToPath(new URL('./sidecar-probe.mjs', import.meta.url));
const DOCKERFILE = fileURLToPath(new URL('../containers/sidecar/Dockerfile', import.meta.url));

/** How the sidecar process is started. */
export type SidecarKind =
  /** The esbuild bundle with the node flags of the image's ENTRYPOINT: what a deployment runs. */
  | 'bundle'
  /** Through runLocalJob, as `batch-transform run --local` does: the TypeScript entry under tsx. */
  | 'tsx';

export interface SidecarCommand {
  readonly kind: SidecarKind;
  /** For `bundle`: the bundle file and the node flags it runs with. */
  readonly bundle?: string;
  readonly nodeFlags?: readonly string[];
}

/**
 * Builds the sidecar bundle into `dir` exactly as the image build does, and reads the node flags
 * from the Dockerfile's ENTRYPOINT (`["node", <flags…>, "/opt/sidecar/sidecar.mjs"]`), so the
 * benchmark runs what a task runs and follows the Dockerfile when it changes.
 */
export async function deployedSidecar(dir: string): Promise<SidecarCommand> {
  const bundle = await bundleSidecar(dir);
  const dockerfile = await readFile(DOCKERFILE, 'utf8');
  const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile)?.[1];
  const argv = entry ? (JSON.parse(entry) as string[]) : ['node'];
  const script = argv.findIndex((a, i) => i > 0 && !a.startsWith('-'));
  return { kind: 'bundle', bundle, nodeFlags: argv.slice(1, script < 0 ? undefined : script) };
}

export interface PipelineOptions {
  /** Job name (unique per run: the work location is named after it). */
  readonly name: string;
  /** Folder holding the input object(s). */
  readonly inputDir?: string;
  /** The input prefix instead of `inputDir` (an s3:// location on the loopback S3 server). */
  readonly inputUri?: string;
  /** Where outputs go, instead of `<scratchDir>/output/` (removed after the run either way). */
  readonly outputRoot?: string;
  /** Storage for the lifecycle stages (one that serves every location the job names). */
  readonly storage?: Storage;
  /** More environment for the sidecar (the S3 endpoint). */
  readonly env?: Readonly<Record<string, string>>;
  /** @default 'text/csv' */
  readonly contentType?: string;
  /** Scratch folder for the output and the work location (the output is removed after the run). */
  readonly scratchDir: string;
  readonly modelUrl: string;
  readonly maxConcurrentTransforms: number;
  readonly maxPayloadInMB: number;
  readonly sidecar: SidecarCommand;
  /** Write a V8 CPU profile of the sidecar into this folder (bundle only: NODE_OPTIONS refuses --cpu-prof). */
  readonly cpuProfileDir?: string;
  /** Sample the sidecar's memory breakdown this often (ms) and return it at the RSS peak. */
  readonly memorySampleMs?: number;
}

export interface PipelineRun {
  readonly inputBytes: number;
  readonly records: number;
  readonly invocations: number;
  /** Sum of the partition's work items' durations: read, split, invoke, write and complete the output. */
  readonly transformMs: number;
  /** The partition's own wall time in the sidecar: read the job and plan, wait for the model, every item. */
  readonly partitionMs: number;
  /** From the first POST /invocations to the partition's end (its last output completed). */
  readonly invocationSpanMs: number;
  readonly objects: number;
  /** The job end to end, validate to cleanup, including starting the sidecar process. */
  readonly jobMs: number;
  /** The sidecar's CPU time (user + system, every thread) over its whole life. */
  readonly cpuSeconds: number;
  /** The sidecar's CPU time from its first POST /invocations to its exit: the transform's own. */
  readonly transformCpuSeconds: number;
  /** The sidecar's peak resident set (VmHWM), MB. */
  readonly peakRssMB: number;
  /** process.memoryUsage() of the sidecar when RSS was highest (with memorySampleMs). */
  readonly atPeak?: NodeJS.MemoryUsage;
}

interface ProbeReport {
  vmHwmKiB: number;
  cpuUs: number;
  firstInvocationCpuUs: number | null;
  firstInvocationAtMs: number | null;
  atPeak?: NodeJS.MemoryUsage;
}

/**
 * One transform job over `inputDir` (Line split, MultiRecord, text/csv, AssembleWith Line, file://
 * in and out) against a model server that is already running. The sidecar's CPU time and peak RSS
 * come from a probe preloaded into it. Throws unless the job completes.
 */
export async function runPipeline(o: PipelineOptions): Promise<PipelineRun> {
  const storage = o.storage ?? new FileStorage();
  const outDir = join(o.scratchDir, 'output', o.name);
  const outputUri = o.outputRoot ? `${o.outputRoot}${o.name}/` : `file://${outDir}/`;
  const inputUri = o.inputUri ?? `file://${o.inputDir}/`;
  const contentType = o.contentType ?? 'text/csv';
  const workRoot = `file://${join(o.scratchDir, 'work')}/`;
  const probeFile = join(o.scratchDir, `${o.name}.probe.json`);
  await mkdir(o.scratchDir, { recursive: true });
  await rm(outDir, { recursive: true, force: true });
  await rm(probeFile, { force: true });
  const request = {
    TransformJobName: o.name,
    ModelName: 'bench-echo',
    MaxConcurrentTransforms: o.maxConcurrentTransforms,
    MaxPayloadInMB: o.maxPayloadInMB,
    BatchStrategy: 'MultiRecord',
    TransformInput: {
      DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: inputUri } },
      ContentType: contentType,
      SplitType: 'Line',
      CompressionType: 'None',
    },
    TransformOutput: { S3OutputPath: outputUri, Accept: contentType, AssembleWith: 'Line' },
    TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
  };
  const sidecarEnv: Record<string, string> = {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${PROBE}`.trim(),
    BENCH_PROBE_FILE: probeFile,
    ...o.env,
    ...(o.memorySampleMs ? { BENCH_PROBE_SAMPLE_MS: String(o.memorySampleMs) } : {}),
  };

  const started = performance.now();
  try {
    let outcome: { workUri: string; status: string; reason?: string | undefined };
    if (o.sidecar.kind === 'tsx') {
      if (o.cpuProfileDir) throw new Error('a CPU profile needs the bundle sidecar');
      const { description, ref } = await runLocalJob({
        request,
        storage,
        model: { kind: 'url', url: o.modelUrl },
        workRoot,
        sidecarEnv,
      });
      outcome = {
        workUri: ref.workUri,
        status: description.TransformJobStatus,
        reason: description.FailureReason,
      };
    } else {
      if (!o.sidecar.bundle) throw new Error('the bundle sidecar needs its bundle file');
      const argv = [
        ...(o.sidecar.nodeFlags ?? []),
        ...(o.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfileDir}`] : []),
        o.sidecar.bundle,
        'run',
      ];
      outcome = await runWithSidecar(argv, request, storage, workRoot, o.modelUrl, sidecarEnv);
    }
    const jobMs = performance.now() - started;
    if (outcome.status !== 'Completed') {
      throw new Error(`benchmark job ${o.name} ended ${outcome.status}: ${outcome.reason ?? ''}`);
    }
    const result = await readJson<PartitionResult>(storage, resultUri(outcome.workUri, 0));
    const probe = JSON.parse(await readFile(probeFile, 'utf8')) as ProbeReport;
    const cpuSeconds = probe.cpuUs / 1e6;
    return {
      inputBytes: result.items.reduce((n, i) => n + i.bytesIn, 0),
      records: result.counters.records,
      invocations: result.counters.invocations,
      transformMs: Math.max(
        1,
        result.items.reduce((n, i) => n + i.durationMs, 0),
      ),
      partitionMs: Math.max(1, Date.parse(result.endedAt) - Date.parse(result.startedAt)),
      invocationSpanMs: Math.max(
        1,
        Date.parse(result.endedAt) - (probe.firstInvocationAtMs ?? Date.parse(result.startedAt)),
      ),
      objects: result.items.length,
      jobMs,
      cpuSeconds,
      transformCpuSeconds:
        probe.firstInvocationCpuUs === null ? cpuSeconds : (probe.cpuUs - probe.firstInvocationCpuUs) / 1e6,
      peakRssMB: (probe.vmHwmKiB * 1024) / 1e6,
      ...(probe.atPeak ? { atPeak: probe.atPeak } : {}),
    };
  } finally {
    await rm(outDir, { recursive: true, force: true });
    await rm(probeFile, { force: true });
    if (o.outputRoot?.startsWith('s3://')) {
      for await (const object of storage.list(outputUri)) await storage.delete(object.uri);
    }
  }
}

/**
 * The stages the local runner runs (validate, plan, the sidecar, assemble, finalize, cleanup), with
 * the sidecar started from `argv` under the environment contract of src/local/worker.ts. The runner
 * itself always starts the TypeScript entry under tsx, which is not what a task runs.
 */
async function runWithSidecar(
  argv: readonly string[],
  request: unknown,
  storage: Storage,
  workRoot: string,
  modelUrl: string,
  env: Record<string, string>,
): Promise<{ workUri: string; status: string; reason?: string | undefined }> {
  const ref = await validateStage(
    { request },
    { models: {}, enabledInstanceTypes: [], maxInstanceCount: 100, workRoot, local: true },
    storage,
  );
  try {
    const plan = await planStage(ref, storage);
    if (plan.partitions.length !== 1) {
      throw new Error(`expected one partition, the plan has ${plan.partitions.length}`);
    }
    const child = spawn(process.execPath, argv, {
      env: {
        ...process.env,
        ...env,
        JOB_URI: ref.jobUri,
        PLAN_URI: plan.planUri,
        PARTITION_INDEX: '0',
        MODEL_URL: modelUrl,
        PROGRESS_INTERVAL_MS: '500',
        METRICS: 'off',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString('utf8')).slice(-4000);
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) {
      const failure = { Error: 'WorkerFailed', Cause: `the sidecar exited with ${code}: ${stderr.trim()}` };
      const d = await finalizeStage(ref, storage, { failure, stopped: false });
      return { workUri: ref.workUri, status: d.TransformJobStatus, reason: d.FailureReason ?? failure.Cause };
    }
    await assembleStage(ref, plan, storage);
    const d = await finalizeStage(ref, storage, { stopped: false });
    return { workUri: ref.workUri, status: d.TransformJobStatus, reason: d.FailureReason };
  } finally {
    await cleanupStage({ jobName: ref.jobName, workUri: ref.workUri, outputUri: ref.outputUri }, storage);
  }
}
