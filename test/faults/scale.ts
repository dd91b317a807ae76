/**
 * `npm run scale`: the control plane's scale figures (control-plane-scale.ts), printed as the keys
 * of a JSON last line. `npm run scale -- --throughput` runs the data-plane scale run below instead.
 *
 * The throughput run: 10,000 small objects holding 1,000,000 records in all, through local mode (the real
 * runner in this process, a real sidecar and test-model process per worker), then every output
 * checked record for record. Reports plan time, throughput and peak memory (resident set) of the
 * runner, the sidecars and the models, and writes the figures into docs/RELIABILITY.md (between the
 * scale markers) unless `--no-doc`.
 *
 *   npm run scale -- --throughput              file:// input and output, 2 workers
 *   npm run scale -- --throughput --s3         the same on the loopback S3 server
 *   npm run scale -- --throughput --objects 1000 --records 100000 --workers 2 --concurrency 8
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runLocalJob } from '../../src/local/runner';
import { Storages } from '../../src/storage/index';
import { REPO_ROOT, TEST_MODEL_COMMAND } from '../fixtures/models/start';
import { type S3Harness, startS3Server } from '../support/s3-server';
import { makeTempDir } from '../support/tmp';
import { loadavg } from 'node:os';
import { controlPlaneFigures, writeControlPlaneDoc } from './control-plane-scale';
import { runProcesses } from './harness';
import { replaceSection } from './report';

// The AWS SDK's notice about Node 20 support, once per process (the CLI children inherit this).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

interface Args {
  objects: number;
  records: number;
  workers: number;
  concurrency: number;
  s3: boolean;
  doc: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    objects: 10_000,
    records: 1_000_000,
    workers: 2,
    concurrency: 8,
    s3: false,
    doc: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} takes a whole number ≥ 1`);
      return v;
    };
    if (a === '--objects') args.objects = num();
    else if (a === '--records') args.records = num();
    else if (a === '--workers') args.workers = num();
    else if (a === '--concurrency') args.concurrency = num();
    else if (a === '--s3') args.s3 = true;
    else if (a === '--no-doc') args.doc = false;
    else
      throw new Error(
        `unknown option ${a}; options: --objects N --records N --workers N --concurrency N --s3 --no-doc`,
      );
  }
  return args;
}

/** Object i's records: `<i>-<j>,<letters>` lines, ~30 bytes each, deterministic. */
function objectBody(i: number, count: number): string {
  let s = '';
  for (let j = 0; j < count; j++)
    s += `${i}-${j},${'abcdefghijklmnopqrstuvwxyz'.slice(0, 8 + ((i * 7 + j * 13) % 17))}\n`;
  return s;
}

const mib = (bytes: number) => bytes / 1_048_576;

/** Peak resident set (VmHWM) of every process of the run, sampled until stopped. */
function sampleProcesses(runId: string) {
  const peaks = new Map<number, { role: string; kb: number }>();
  let runnerPeak = process.memoryUsage().rss;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      runnerPeak = Math.max(runnerPeak, process.memoryUsage().rss);
      for (const p of await runProcesses(runId)) {
        if (p.role === 'other') continue;
        const status = await readFile(`/proc/${p.pid}/status`, 'latin1').catch(() => '');
        const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
        const prev = peaks.get(p.pid);
        if (!prev || kb > prev.kb) peaks.set(p.pid, { role: p.role, kb });
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      const max = (role: string) =>
        Math.max(0, ...[...peaks.values()].filter((p) => p.role === role).map((p) => p.kb));
      return {
        runner: runnerPeak / 1_048_576,
        sidecar: max('sidecar'),
        model: max('model'),
        processes: peaks.size,
      };
    },
  };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const perObject = Math.floor(args.records / args.objects);
  const extra = args.records - perObject * args.objects;
  const tmp = await makeTempDir('bt-scale');
  let s3: S3Harness | undefined;
  const runId = `scale-${Date.now() % 1_000_000}`;
  try {
    // The data, written before any timing starts and regenerated to check the outputs (holding it
    // would count against the runner's memory).
    const keyOf = (i: number) =>
      `part-${String(Math.floor(i / 1000)).padStart(2, '0')}/obj-${String(i).padStart(6, '0')}.csv`;
    const bodyOf = (i: number) => objectBody(i, perObject + (i < extra ? 1 : 0));
    function* bodies(): Generator<readonly [string, string]> {
      for (let i = 0; i < args.objects; i++) yield [keyOf(i), bodyOf(i)];
    }
    let bytes = 0;
    for (const [, body] of bodies()) bytes += body.length;
    let inputUri: string;
    let outputUri: string;
    let storage: Storages;
    let sidecarEnv: NodeJS.ProcessEnv = {};
    if (args.s3) {
      s3 = await startS3Server({ buckets: ['scale'] });
      await s3.seed(
        'scale',
        (function* () {
          for (const [key, body] of bodies()) yield [`in/${key}`, body] as const;
        })(),
      );
      inputUri = 's3://scale/in/';
      outputUri = 's3://scale/out/';
      const keys = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
      storage = new Storages({ s3: { ...s3.clientConfig, credentials: keys } as never });
      sidecarEnv = {
        AWS_ENDPOINT_URL_S3: s3.endpoint,
        AWS_ACCESS_KEY_ID: keys.accessKeyId,
        AWS_SECRET_ACCESS_KEY: keys.secretAccessKey,
        AWS_REGION: 'us-east-1',
      };
    } else {
      for (const [key, body] of bodies()) {
        await mkdir(join(tmp.path, 'in', key, '..'), { recursive: true });
        await writeFile(join(tmp.path, 'in', key), body);
      }
      inputUri = `${tmp.uri}in/`;
      outputUri = `${tmp.uri}out/`;
      storage = new Storages();
    }
    console.log(
      `scale: ${args.objects.toLocaleString('en-US')} objects, ${args.records.toLocaleString('en-US')} records, ${mib(bytes).toFixed(1)} MiB on ${args.s3 ? 'the loopback S3 server' : 'file://'}; ${args.workers} workers, MaxConcurrentTransforms ${args.concurrency}`,
    );

    process.env.TEST_MODEL_UPPERCASE = '1';
    process.env.TEST_MODEL_RECORD_LIMIT = '0';
    process.env.FAULTS_RUN = runId; // inherited by the sidecars and models: how the sampler finds them
    const rssBefore = process.memoryUsage().rss / 1_048_576;
    const sampler = sampleProcesses(runId);
    const t: Record<string, number> = { start: performance.now() };
    const { description } = await runLocalJob({
      request: {
        TransformJobName: runId,
        ModelName: 'test-model',
        BatchStrategy: 'MultiRecord',
        MaxPayloadInMB: 6,
        MaxConcurrentTransforms: args.concurrency,
        TransformInput: {
          DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: inputUri } },
          ContentType: 'text/csv',
          SplitType: 'Line',
        },
        TransformOutput: { S3OutputPath: outputUri, AssembleWith: 'Line' },
        TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: args.workers },
      },
      storage,
      model: { kind: 'argv', argv: TEST_MODEL_COMMAND, cwd: REPO_ROOT, label: 'test model' },
      workRoot: args.s3 ? 's3://scale/work/' : `${tmp.uri}work/`,
      sidecarEnv,
      progressIntervalMs: 2000,
      onPhase: (phase) => {
        t[phase] = performance.now();
      },
    });
    t.end = performance.now();
    const mem = await sampler.stop();
    if (description.TransformJobStatus !== 'Completed') {
      console.error(`the job ended ${description.TransformJobStatus}: ${description.FailureReason}`);
      return 1;
    }

    // Every output, record for record: the input upper-cased.
    let wrong = 0;
    let records = 0;
    for (const [key, body] of bodies()) {
      const uri = `${outputUri}${key}.out`;
      const out = (await storage.readAll(uri)).toString('latin1');
      if (out !== body.toUpperCase()) wrong++;
      records += out.split('\n').length - 1;
    }
    storage.destroy();
    if (wrong > 0 || records !== args.records || description.Progress.records !== args.records) {
      console.error(
        `${wrong} outputs differ from their input upper-cased; ${records} records written, ${description.Progress.records} counted, ${args.records} in the input`,
      );
      return 1;
    }

    const s = (a: string, b: string) => (t[b]! - t[a]!) / 1000;
    const plan = s('validated', 'planned');
    const transform = s('transforming', 'finalizing');
    const total = s('start', 'end');
    const figures: Array<[string, string]> = [
      [
        'objects / records / input',
        `${args.objects.toLocaleString('en-US')} / ${args.records.toLocaleString('en-US')} / ${mib(bytes).toFixed(1)} MiB`,
      ],
      [
        'storage, workers, MaxConcurrentTransforms',
        `${args.s3 ? 'loopback S3 (s3rver)' : 'file://'}, ${args.workers}, ${args.concurrency}`,
      ],
      ['plan time (list + plan)', `${plan.toFixed(2)} s`],
      ['transform time (workers start to last output)', `${transform.toFixed(1)} s`],
      ['whole job (validate to cleanup)', `${total.toFixed(1)} s`],
      [
        'throughput (transform)',
        `${Math.round(args.records / transform).toLocaleString('en-US')} records/s, ${Math.round(args.objects / transform).toLocaleString('en-US')} objects/s, ${(mib(bytes) / transform).toFixed(2)} MiB/s`,
      ],
      [
        'peak RSS: runner (this process; before the job)',
        `${mem.runner.toFixed(0)} MiB (${rssBefore.toFixed(0)} MiB)`,
      ],
      ['peak RSS: one sidecar (max)', `${(mem.sidecar / 1024).toFixed(0)} MiB`],
      ['peak RSS: one model process (max)', `${(mem.model / 1024).toFixed(0)} MiB`],
      [
        'outputs checked',
        `${args.objects.toLocaleString('en-US')} of ${args.objects.toLocaleString('en-US')} equal their input upper-cased; ${records.toLocaleString('en-US')} records, none lost or duplicated`,
      ],
    ];
    for (const [k, v] of figures) console.log(`${k.padEnd(48)} ${v}`);
    if (args.doc) {
      const flags = ['--throughput', ...process.argv.slice(2).filter((f) => f !== '--no-doc')];
      const table = [
        `\`npm run scale${flags.length ? ` -- ${flags.join(' ')}` : ''}\` (${new Date().toISOString().slice(0, 10)}, Node ${process.versions.node}, 2 CPU cores shared with other work):`,
        '',
        '| measure | result |',
        '| --- | --- |',
        ...figures.map(([k, v]) => `| ${k} | ${v} |`),
      ].join('\n');
      await replaceSection(args.s3 ? 'scale-s3' : 'scale', table);
      console.log('wrote the figures into docs/RELIABILITY.md');
    }
    return 0;
  } finally {
    await s3?.stop();
    await tmp.remove();
  }
}

async function controlPlane(): Promise<number> {
  const figures = await controlPlaneFigures((line) => console.log(line));
  if (!process.argv.includes('--no-doc')) {
    await writeControlPlaneDoc(
      figures,
      loadavg()
        .map((l) => l.toFixed(1))
        .join(' / '),
    );
    console.log('wrote the figures into docs/RELIABILITY.md');
  }
  console.log(JSON.stringify(figures));
  return 0;
}

const throughput = process.argv.indexOf('--throughput');
if (throughput >= 0) process.argv.splice(throughput, 1);
process.exitCode = throughput >= 0 ? await main() : await controlPlane();
