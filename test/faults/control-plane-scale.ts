/**
 * Control-plane scale figures (`npm run scale`; the last line is JSON with every figure):
 *
 *   planSecondsPer1MObjects   the plan stage (list, balance, write the plan and partition documents)
 *                             over a loopback listing of 1,000,000 keys, 100 partitions
 *   planPeakRssMiB            peak resident set of the process that planned the 1,000,000 keys
 *   planSecondsPer100kObjects the same over 100,000 keys
 *   manifestPlanSecondsPer100kEntries  the plan stage over a manifest of 100,000 entries (read as a
 *                             stream, entries confirmed from a listing), 100 partitions
 *   maxConcurrentPartitions   RunPartition tasks in flight at once, synthesized state machine, 100 partitions
 *   historyEventsFor100Partitions  events in the parent execution's history, 100 partitions each
 *                             retried twice (largest child history and the inline-Map equivalent beside it)
 *   cleanupSecondsFor10kObjects    cleanup of a failed job of 10,000 objects in 100 partitions:
 *                             10,000 scratch shard outputs, 200 incomplete multipart uploads
 *
 * The S3 server is the in-memory one (test/support/memory-s3.ts) in a process of its own, so the
 * planner's memory and time are its own. Each plan measurement runs in a fresh child process (this
 * file with `--plan-child`) so its peak RSS is that of one plan.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CreateMultipartUploadCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { PLAN_HEAP_MIB } from '../../lib/lifecycle';
import { cleanupStage } from '../../src/lifecycle/cleanup';
import { planStage } from '../../src/lifecycle/plan';
import { validateStage } from '../../src/lifecycle/validate';
import { S3Storage } from '../../src/storage/s3';
import type { JobRef } from '../../src/contract/state';
import { stateMachineDefinition } from '../cdk/definition';
import { runPartitionsAtScale } from '../cdk/partitions-at-scale';
import { exampleProps, synthesize } from '../cdk/synth';
import { type MemoryS3Process, startMemoryS3Process } from '../support/memory-s3-child';
import { markdownTable, replaceSection } from './report';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const SELF = fileURLToPath(import.meta.url);
const PARTITIONS = 100;

export interface ControlPlaneFigures {
  planSecondsPer1MObjects: number;
  planCpuSecondsPer1MObjects: number;
  planPeakRssMiB: number;
  planSecondsPer100kObjects: number;
  planPeakRssMiBPer100kObjects: number;
  manifestPlanSecondsPer100kEntries: number;
  manifestPlanHeadRequestsPer100kEntries: number;
  maxConcurrentPartitions: number;
  historyEventsFor100Partitions: number;
  largestChildHistoryFor100Partitions: number;
  inlineMapHistoryFor100Partitions: number;
  cleanupSecondsFor10kObjects: number;
}

/** A job over `s3://data/<prefix>` whose normalized form is stored in the work bucket. */
async function storeJob(
  storage: S3Storage,
  name: string,
  prefix: string,
  instances: number,
  source: 'S3Prefix' | 'ManifestFile' = 'S3Prefix',
): Promise<JobRef> {
  return validateStage(
    {
      request: {
        TransformJobName: name,
        ModelName: 'model',
        TransformInput: {
          DataSource: {
            S3DataSource:
              source === 'S3Prefix'
                ? { S3DataType: 'S3Prefix', S3Uri: `s3://data/${prefix}` }
                : { S3DataType: 'ManifestFile', S3Uri: `s3://data/${manifestKey(prefix)}` },
          },
          ContentType: 'text/csv',
          SplitType: 'Line',
        },
        TransformOutput: { S3OutputPath: `s3://data/out/${name}/` },
        TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: instances },
      },
      executionName: name,
    },
    {
      models: { model: {} },
      enabledInstanceTypes: [],
      maxInstanceCount: 100,
      workRoot: 's3://work/jobs/',
      local: true,
    },
    storage,
  );
}

/** Where the manifest of the objects under `prefix` is written (beside them, not under them). */
const manifestKey = (prefix: string) => `${prefix.replace(/\/$/, '')}.manifest`;

export interface PlanFigure {
  readonly objects: number;
  readonly seconds: number;
  /** CPU time of the planning process: the figure that other work on the machine disturbs least. */
  readonly cpuSeconds: number;
  readonly peakRssMiB: number;
  readonly partitions: number;
  /** HEAD requests the plan made (a manifest's entries are confirmed from a listing). */
  readonly headRequests?: number;
}

/** Plans `objects` keys in a fresh process (this file, `--plan-child`) and returns its figures. */
async function measurePlan(
  server: MemoryS3Process,
  objects: number,
  source: 'S3Prefix' | 'ManifestFile' = 'S3Prefix',
): Promise<PlanFigure> {
  const prefix = `in-${objects}/`;
  // Sizes 1–64 KiB, so balancing has work to do; no object is big enough to be cut into shards.
  await server.seed({
    bucket: 'data',
    prefix,
    count: objects,
    baseSize: 1024,
    spread: 63 * 1024,
    suffix: '.csv',
  });
  const child = fork(SELF, ['--plan-child', server.endpoint, prefix, String(objects), source], {
    // The heap cap a Lambda of 1 GiB would want (NODE_OPTIONS): V8 otherwise grows the heap
    // lazily, and peak RSS then measures uncollected garbage more than the plan's working set.
    execArgv: ['--import', 'tsx', `--max-old-space-size=${PLAN_HEAP_MIB}`],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve(m as PlanFigure));
    child.once('exit', (code) =>
      code ? reject(new Error(`the plan child exited with ${code}`)) : undefined,
    );
  });
}

async function planChild(
  endpoint: string,
  prefix: string,
  objects: number,
  source: 'S3Prefix' | 'ManifestFile',
): Promise<void> {
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'memory', secretAccessKey: 'memory' },
    forcePathStyle: true,
  });
  const storage = new S3Storage({ client });
  if (source === 'ManifestFile') {
    // The keys the server seeded (memory-s3-child.ts names them by index, zero-padded), in order.
    const width = String(objects - 1).length;
    const entries = Array.from({ length: objects }, (_, i) => `${String(i).padStart(width, '0')}.csv`);
    await storage.put(
      `s3://data/${manifestKey(prefix)}`,
      JSON.stringify([{ prefix: `s3://data/${prefix}` }, ...entries]),
    );
  }
  const ref = await storeJob(storage, `plan-${source}-${objects}`, prefix, PARTITIONS, source);
  let headRequests = 0;
  client.middlewareStack.add(
    (next, context) => (args) => {
      if (context.commandName === 'HeadObjectCommand') headRequests++;
      return next(args);
    },
    { step: 'initialize' },
  );
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const plan = await planStage(ref, storage);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  if (plan.objectCount !== objects) throw new Error(`planned ${plan.objectCount} of ${objects} objects`);
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  process.send!({
    objects,
    seconds,
    cpuSeconds,
    peakRssMiB,
    partitions: plan.partitions.length,
    headRequests,
  } satisfies PlanFigure);
  client.destroy();
  process.disconnect();
}

/**
 * A failed job of 10,000 objects in 100 partitions, as cleanup finds it: the plan, 10,000 shard
 * outputs in the work location (every object as if cut in one shard), and 200 incomplete multipart
 * uploads (one per partition in the work location and one in the output). Returns cleanup's time.
 */
async function measureCleanup(server: MemoryS3Process): Promise<{ seconds: number; report: object }> {
  const client = new S3Client(server.clientConfig);
  const storage = new S3Storage({ client });
  try {
    const objects = 10_000;
    await server.seed({
      bucket: 'data',
      prefix: 'in-cleanup/',
      count: objects,
      baseSize: 1024,
      suffix: '.csv',
    });
    const ref = await storeJob(storage, 'cleanup-10k', 'in-cleanup/', PARTITIONS);
    await planStage(ref, storage);
    const width = String(objects - 1).length;
    await server.seed({
      bucket: 'work',
      prefix: 'jobs/cleanup-10k/shards/',
      count: objects,
      baseSize: 1024,
      suffix: '.csv/00000.out',
    });
    for (let p = 0; p < PARTITIONS; p++) {
      const name = String(p * 100).padStart(width, '0');
      for (const [Bucket, Key] of [
        ['work', `jobs/cleanup-10k/shards/${name}.csv/00001.out`],
        ['data', `out/cleanup-10k/${name}.csv.out`],
      ] as const) {
        const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
        await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 1, Body: 'part' }));
      }
    }
    const started = performance.now();
    const report = await cleanupStage(
      { jobName: ref.jobName, workUri: ref.workUri, outputUri: ref.outputUri },
      storage,
    );
    const seconds = (performance.now() - started) / 1000;
    const left =
      (await server.incompleteUploads('work', 'jobs/cleanup-10k/')) +
      (await server.incompleteUploads('data', 'out/cleanup-10k/'));
    if (left !== 0) throw new Error(`cleanup left ${left} incomplete uploads`);
    return { seconds, report };
  } finally {
    client.destroy();
  }
}

export async function controlPlaneFigures(
  log: (line: string) => void = console.log,
): Promise<ControlPlaneFigures> {
  // A fresh server per measurement: a million keys left in one would slow the next (its GC).
  const fresh = async <T>(measure: (server: MemoryS3Process) => Promise<T>): Promise<T> => {
    const server = await startMemoryS3Process(['data', 'work']);
    try {
      return await measure(server);
    } finally {
      await server.stop();
    }
  };
  {
    const p100k = await fresh((s) => measurePlan(s, 100_000));
    log(
      `plan 100,000 objects: ${p100k.seconds.toFixed(1)} s (CPU ${p100k.cpuSeconds.toFixed(1)} s), peak RSS ${p100k.peakRssMiB.toFixed(0)} MiB`,
    );
    const manifest = await fresh((s) => measurePlan(s, 100_000, 'ManifestFile'));
    log(
      `plan a manifest of 100,000 entries: ${manifest.seconds.toFixed(1)} s (CPU ${manifest.cpuSeconds.toFixed(1)} s), ${manifest.headRequests} HEAD requests, peak RSS ${manifest.peakRssMiB.toFixed(0)} MiB`,
    );
    const p1m = await fresh((s) => measurePlan(s, 1_000_000));
    log(
      `plan 1,000,000 objects: ${p1m.seconds.toFixed(1)} s (CPU ${p1m.cpuSeconds.toFixed(1)} s), peak RSS ${p1m.peakRssMiB.toFixed(0)} MiB`,
    );
    const cleanup = await fresh(measureCleanup);
    log(
      `cleanup of 10,000 objects / 100 partitions: ${cleanup.seconds.toFixed(2)} s ${JSON.stringify(cleanup.report)}`,
    );

    const synth = synthesize(exampleProps({ schedules: {} }));
    let wide: Awaited<ReturnType<typeof runPartitionsAtScale>>;
    let retried: Awaited<ReturnType<typeof runPartitionsAtScale>>;
    try {
      const definition = stateMachineDefinition(synth.json);
      wide = await runPartitionsAtScale(definition, {
        partitions: PARTITIONS,
        holdUntilInFlight: PARTITIONS,
      });
      retried = await runPartitionsAtScale(definition, { partitions: PARTITIONS, failuresPerPartition: 2 });
    } finally {
      synth.dispose();
    }
    log(
      `state machine, ${PARTITIONS} partitions: ${wide.maxConcurrentPartitions} RunPartition tasks at once`,
    );
    log(`history, ${PARTITIONS} partitions each retried twice: ${JSON.stringify(retried.history)}`);
    const round = (n: number, digits = 2) => Number(n.toFixed(digits));
    return {
      planSecondsPer1MObjects: round(p1m.seconds),
      planCpuSecondsPer1MObjects: round(p1m.cpuSeconds),
      planPeakRssMiB: Math.round(p1m.peakRssMiB),
      planSecondsPer100kObjects: round(p100k.seconds),
      planPeakRssMiBPer100kObjects: Math.round(p100k.peakRssMiB),
      manifestPlanSecondsPer100kEntries: round(manifest.seconds),
      manifestPlanHeadRequestsPer100kEntries: manifest.headRequests ?? 0,
      maxConcurrentPartitions: wide.maxConcurrentPartitions,
      historyEventsFor100Partitions: retried.history.parent,
      largestChildHistoryFor100Partitions: retried.history.largestChild,
      inlineMapHistoryFor100Partitions: retried.history.parentIfInline,
      cleanupSecondsFor10kObjects: round(cleanup.seconds),
    };
  }
}

/** Goals from the control-plane scale issue; a figure without one is reported as measured. */
const GOALS: Partial<Record<keyof ControlPlaneFigures, string>> = {
  planSecondsPer1MObjects: '≤ 60 s',
  planPeakRssMiB: '≤ 1,024 MiB',
  maxConcurrentPartitions: '100 (InstanceCount, no waves)',
  historyEventsFor100Partitions: '< 25,000 per execution',
  largestChildHistoryFor100Partitions: '< 25,000 per execution',
  cleanupSecondsFor10kObjects: 'within one Lambda (900 s)',
};

/** Writes the figures into docs/RELIABILITY.md between the control-plane markers. */
export async function writeControlPlaneDoc(figures: ControlPlaneFigures, load: string): Promise<void> {
  const rows = Object.entries(figures).map(([k, v]) => [
    `\`${k}\``,
    String(v),
    GOALS[k as keyof ControlPlaneFigures] ?? '',
  ]);
  await replaceSection(
    'control-plane',
    [
      `\`npm run scale\` (${new Date().toISOString().slice(0, 10)}, Node ${process.versions.node}, 2 CPU cores shared with other work; load average ${load} during the run):`,
      '',
      markdownTable(['figure', 'measured', 'goal'], rows),
    ].join('\n'),
  );
}

if (process.argv[2] === '--plan-child') {
  await planChild(
    process.argv[3]!,
    process.argv[4]!,
    Number(process.argv[5]),
    process.argv[6] === 'ManifestFile' ? 'ManifestFile' : 'S3Prefix',
  );
}
