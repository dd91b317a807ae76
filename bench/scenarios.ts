/**
 * The benchmark's job shapes beyond the one large CSV object (docs/PERFORMANCE.md, "What is
 * measured"): many small objects, a latency-bound model, the S3 path on the loopback S3 server, and
 * the start-up of a one-record local job. Each returns raw runs; run.ts takes the medians.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Storages } from '../src/storage';
import { type MemoryS3, startMemoryS3 } from '../test/support/memory-s3';
import { type PipelineRun, runPipeline, type SidecarCommand } from './pipeline';

const CLI = fileURLToPath(new URL('../bin/batch-transform.mjs', import.meta.url));
export const S3_BUCKET = 'bench';

export interface Common {
  readonly scratchDir: string;
  readonly sidecar: SidecarCommand;
  readonly maxConcurrentTransforms: number;
}

/** The loopback S3 server, the Storage the stages use with it, and the sidecar's environment. */
export interface BenchS3 {
  readonly server: MemoryS3;
  readonly storage: Storages;
  readonly env: Readonly<Record<string, string>>;
  /** Copies every file of `dir` under `s3://bench/<prefix>/`; returns the prefix URI. */
  upload(dir: string, prefix: string): Promise<string>;
  /** Every GetObject waits this long before its first byte (0: none). */
  getLatency(ms: number): void;
}

export async function startBenchS3(): Promise<BenchS3> {
  const server = await startMemoryS3({ buckets: [S3_BUCKET] });
  return {
    server,
    storage: new Storages({ s3: server.storage }),
    env: {
      AWS_ENDPOINT_URL_S3: server.endpoint,
      AWS_REGION: 'us-east-1',
      // The loopback server checks no signature; the SDK needs some credentials to sign with.
      AWS_ACCESS_KEY_ID: 'bench',
      AWS_SECRET_ACCESS_KEY: 'bench',
    },
    async upload(dir, prefix) {
      const names = (await readdir(dir)).filter((n) => !n.startsWith('.'));
      const entries: Array<[string, Buffer]> = [];
      for (const name of names) entries.push([`${prefix}/${name}`, await readFile(join(dir, name))]);
      server.seed(S3_BUCKET, entries);
      return `s3://${S3_BUCKET}/${prefix}/`;
    },
    getLatency(ms) {
      server.faults.set(
        ms > 0 ? (r) => (r.operation === 'GetObject' ? { stallMs: ms } : undefined) : undefined,
      );
    },
  };
}

/** One job over many small JSON Lines objects; its wall time is the partition's own. */
export function smallObjectsRun(
  c: Common,
  o: { name: string; inputDir: string; modelUrl: string },
): Promise<PipelineRun> {
  return runPipeline({
    name: o.name,
    inputDir: o.inputDir,
    scratchDir: c.scratchDir,
    modelUrl: o.modelUrl,
    maxConcurrentTransforms: c.maxConcurrentTransforms,
    maxPayloadInMB: 6,
    sidecar: c.sidecar,
    contentType: 'application/jsonlines',
  });
}

/** One CSV job (Line, MultiRecord), on file:// or on the loopback S3 server. */
export function csvJobRun(
  c: Common,
  o: {
    name: string;
    inputDir: string;
    modelUrl: string;
    maxPayloadInMB: number;
    s3?: { readonly bench: BenchS3; readonly inputUri: string };
    cpuProfileDir?: string;
  },
): Promise<PipelineRun> {
  return runPipeline({
    ...(o.cpuProfileDir ? { cpuProfileDir: o.cpuProfileDir } : {}),
    name: o.name,
    scratchDir: c.scratchDir,
    modelUrl: o.modelUrl,
    maxConcurrentTransforms: c.maxConcurrentTransforms,
    maxPayloadInMB: o.maxPayloadInMB,
    sidecar: c.sidecar,
    ...(o.s3
      ? {
          inputUri: o.s3.inputUri,
          outputRoot: `s3://${S3_BUCKET}/out/`,
          storage: o.s3.bench.storage,
          env: o.s3.bench.env,
        }
      : { inputDir: o.inputDir }),
  });
}

/**
 * The wall time of `batch-transform run --local <job> --model-url <url>` on a one-record job, as a
 * user starts it (the CLI process, validate, plan, the sidecar process, assemble, finalize, cleanup).
 */
export async function localJobSeconds(o: {
  scratchDir: string;
  modelUrl: string;
  name: string;
  /** The CLI entry point to time. @default this checkout's bin/batch-transform.mjs */
  cli?: string;
}): Promise<number> {
  const dir = join(o.scratchDir, 'local-job', o.name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'in'), { recursive: true });
  await writeFile(join(dir, 'in', 'one.csv'), '5.1,3.5,1.4,0.2\n');
  const job = join(dir, 'job.json');
  await writeFile(
    job,
    JSON.stringify({
      TransformJobName: o.name,
      ModelName: 'bench-echo',
      TransformInput: {
        DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: `file://${dir}/in/` } },
        ContentType: 'text/csv',
        SplitType: 'Line',
      },
      TransformOutput: { S3OutputPath: `file://${dir}/out/` },
      TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
    }),
  );
  const started = performance.now();
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [o.cli ?? CLI, 'run', '--local', job, '--model-url', o.modelUrl, '--work-dir', `file://${dir}/work/`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
    });
    child.once('error', reject);
    child.once('exit', (c) => (c === 0 ? resolve(c) : reject(new Error(`local job exited ${c}: ${stderr}`))));
  });
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error('local job failed');
  await rm(dir, { recursive: true, force: true });
  return seconds;
}
