/**
 * Runs the real sidecar against real parts: the s3rver harness for storage, the test model as a real
 * HTTP server process, and `containers/sidecar/src/main.ts run` as a child process (as the local
 * runner's worker starts it). A job is made the way a deployment makes it: validateStage writes
 * job.json, planStage writes plan.json, both into the harness's bucket.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { planStage } from '../../src/lifecycle/plan';
import type { JobRef, PlanRef } from '../../src/contract/state';
import { validateStage } from '../../src/lifecycle/validate';
import { outputObjectUri, resultUri } from '../../src/contract/layout';
import type { Plan } from '../../src/contract/plan';
import type { PartitionResult } from '../../src/contract/results';
import type { IncompleteUpload } from '../../src/storage/storage';
import { type RecordedRequest, type StartedModel, startTestModel } from '../fixtures/models/start';
import { type FaultRequest, type S3Harness, startS3Server } from '../support/s3-server';

export const BUCKET = 'test-bucket';
export const SIDECAR_MAIN = fileURLToPath(new URL('../../containers/sidecar/src/main.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
/** s3rver's built-in account: not a secret, the harness's server accepts only it. */
const S3RVER_KEYS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

/** A request field tree merged over the defaults below (objects merged, everything else replaced). */
export type RequestOverrides = Record<string, unknown>;

export interface JobSpec {
  /** Input objects, keyed by their name relative to the job's input prefix. */
  readonly objects: Readonly<Record<string, Buffer | string>>;
  readonly request?: RequestOverrides;
  /** Objects elsewhere in the job's folder, keyed by their name relative to `<job>/` (beside `in/`). */
  readonly outside?: Readonly<Record<string, Buffer | string>>;
  /**
   * Read the input through a ManifestFile (`<job>/manifest.json`) listing these keys, relative to
   * the input prefix, instead of listing the prefix.
   */
  readonly manifest?: readonly string[];
}

export interface PreparedJob {
  readonly name: string;
  readonly ref: JobRef;
  readonly planRef: PlanRef;
  readonly plan: Plan;
  /** `s3://test-bucket/<name>/in/` */
  readonly inputUri: string;
  /** `s3://test-bucket/<name>/out/` */
  readonly outputUri: string;
}

export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly [field: string]: unknown;
}

export interface SidecarRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stderr's JSON log lines, parsed (other lines are left out). */
  readonly logs: readonly LogLine[];
  readonly ms: number;
}

export interface RunningSidecar {
  readonly child: ChildProcess;
  readonly done: Promise<SidecarRun>;
}

export interface SpawnOptions {
  readonly partition?: number;
  readonly model: Pick<StartedModel, 'url'> & { readonly process?: ChildProcess };
  /** Pass the model's PID (MODEL_PID), so the sidecar can tell that it died. @default true when known */
  readonly modelPid?: boolean;
  readonly env?: Readonly<Record<string, string>>;
  /** argv before `run` (default: node --import tsx <main.ts>). */
  readonly command?: readonly string[];
  /** The child is SIGKILLed after this long and the run rejected. @default 30000 */
  readonly timeoutMs?: number;
}

let jobs = 0;

/** One s3rver per test file; every job gets its own prefixes in the one bucket. */
export class SidecarFixture {
  private readonly observers = new Set<(request: FaultRequest) => void>();

  private constructor(readonly s3: S3Harness) {
    // The harness's fault hook, used only to watch: every request to S3 is shown to the observers.
    s3.faults.set((request) => {
      for (const o of this.observers) o(request);
      return undefined;
    });
  }

  static async start(): Promise<SidecarFixture> {
    return new SidecarFixture(await startS3Server());
  }

  /** Resolves with the first S3 request (from any client) that matches. */
  nextRequest(match: (request: FaultRequest) => boolean, timeoutMs = 20_000): Promise<FaultRequest> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.observers.delete(watch);
        reject(new Error(`no matching S3 request within ${timeoutMs} ms`));
      }, timeoutMs);
      const watch = (request: FaultRequest) => {
        if (!match(request)) return;
        clearTimeout(timer);
        this.observers.delete(watch);
        resolve(request);
      };
      this.observers.add(watch);
    });
  }

  /** Records every S3 request that matches until the returned function is called. */
  record(match: (request: FaultRequest) => boolean): () => FaultRequest[] {
    const seen: FaultRequest[] = [];
    const watch = (request: FaultRequest) => {
      if (match(request)) seen.push(request);
    };
    this.observers.add(watch);
    return () => {
      this.observers.delete(watch);
      return seen;
    };
  }

  stop(): Promise<void> {
    return this.s3.stop();
  }

  /** The environment a sidecar needs to reach the harness (as a task's would reach S3). */
  storageEnv(): Record<string, string> {
    return { AWS_ENDPOINT_URL_S3: this.s3.endpoint, AWS_REGION: 'us-east-1', ...S3RVER_KEYS };
  }

  /** Seeds the input and runs the validate and plan stages, as the state machine does. */
  async prepare(label: string, spec: JobSpec): Promise<PreparedJob> {
    const name = `${label}-${process.pid}-${++jobs}`.replace(/[^a-zA-Z0-9-]/g, '-').slice(0, 63);
    const inputUri = `s3://${BUCKET}/${name}/in/`;
    const outputUri = `s3://${BUCKET}/${name}/out/`;
    const entries = [
      ...Object.entries(spec.objects).map(([key, body]) => [`${name}/in/${key}`, body] as const),
      ...Object.entries(spec.outside ?? {}).map(([key, body]) => [`${name}/${key}`, body] as const),
    ];
    await this.s3.seed(BUCKET, entries);
    const manifestUri = `s3://${BUCKET}/${name}/manifest.json`;
    if (spec.manifest) {
      await this.s3.storage.put(manifestUri, JSON.stringify([{ prefix: inputUri }, ...spec.manifest]));
    }
    const request = merge(
      {
        TransformJobName: name,
        ModelName: 'test-model',
        TransformInput: {
          DataSource: {
            S3DataSource: spec.manifest
              ? { S3DataType: 'ManifestFile', S3Uri: manifestUri }
              : { S3DataType: 'S3Prefix', S3Uri: inputUri },
          },
          ContentType: 'text/csv',
          SplitType: 'Line',
        },
        TransformOutput: { S3OutputPath: outputUri, AssembleWith: 'Line' },
        TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
      },
      spec.request ?? {},
    );
    const ref = await validateStage(
      { request },
      {
        models: {},
        enabledInstanceTypes: [],
        maxInstanceCount: 100,
        workRoot: `s3://${BUCKET}/work/`,
        local: true,
      },
      this.s3.storage,
    );
    const planRef = await planStage(ref, this.s3.storage);
    const plan = JSON.parse((await this.s3.storage.readAll(planRef.planUri)).toString('utf8')) as Plan;
    return { name, ref, planRef, plan, inputUri, outputUri };
  }

  /** Starts the sidecar for one partition of `job`. */
  spawn(job: PreparedJob, o: SpawnOptions): RunningSidecar {
    const command = o.command ?? [process.execPath, '--import', TSX, SIDECAR_MAIN];
    const pid = o.model.process?.pid;
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TMPDIR: process.env.TMPDIR,
      ...this.storageEnv(),
      JOB_URI: job.ref.jobUri,
      PLAN_URI: job.planRef.planUri,
      PARTITION_INDEX: String(o.partition ?? 0),
      MODEL_URL: o.model.url,
      ...(pid !== undefined && o.modelPid !== false ? { MODEL_PID: String(pid) } : {}),
      PROGRESS_INTERVAL_MS: '200',
      METRICS: 'off',
      ...o.env,
    };
    const started = performance.now();
    const child = spawn(command[0]!, [...command.slice(1), 'run'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const logs: LogLine[] = [];
    let pending = '';
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString('utf8');
    });
    child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString('utf8');
      stderr += text;
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const raw of lines) {
        const line = parseLog(raw);
        if (line) logs.push(line);
      }
    });
    const timeoutMs = o.timeoutMs ?? 30_000;
    const done = new Promise<SidecarRun>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the sidecar did not exit within ${timeoutMs} ms\n--- stderr ---\n${stderr}`));
      }, timeoutMs);
      child.once('error', reject);
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr, logs, ms: performance.now() - started });
      });
    });
    return { child, done };
  }

  /** Runs the sidecar for one partition to its end. */
  run(job: PreparedJob, o: SpawnOptions): Promise<SidecarRun> {
    return this.spawn(job, o).done;
  }

  /** Every object under the job's output location, keyed by the name relative to it. */
  async outputs(job: PreparedJob): Promise<Map<string, Buffer>> {
    return this.objectsUnder(job.outputUri);
  }

  async objectsUnder(prefixUri: string): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for await (const o of this.s3.storage.list(prefixUri)) {
      out.set(o.uri.slice(prefixUri.length), await this.s3.storage.readAll(o.uri));
    }
    return out;
  }

  /** The final `.out` of the input object named `relativeKey`, or undefined. */
  async output(job: PreparedJob, relativeKey: string): Promise<Buffer | undefined> {
    const uri = outputObjectUri(job.outputUri, relativeKey);
    if (!(await this.s3.storage.head(uri))) return undefined;
    return this.s3.storage.readAll(uri);
  }

  async result(job: PreparedJob, partition = 0): Promise<PartitionResult> {
    const body = await this.s3.storage.readAll(resultUri(job.ref.workUri, partition));
    return JSON.parse(body.toString('utf8')) as PartitionResult;
  }

  /** Multipart uploads begun anywhere under the job's prefixes (input, output, work) and not finished. */
  async incompleteUploads(job: PreparedJob): Promise<IncompleteUpload[]> {
    const found: IncompleteUpload[] = [];
    for (const prefix of [`s3://${BUCKET}/${job.name}/`, job.ref.workUri]) {
      for await (const u of this.s3.storage.listIncompleteUploads(prefix)) found.push(u);
    }
    return found;
  }

  /** The item results of a partition by input relative key (shards of one object are listed in order). */
  async itemsByKey(job: PreparedJob, partition = 0) {
    const result = await this.result(job, partition);
    const byKey = new Map<string, PartitionResult['items'][number]>();
    for (const item of result.items) byKey.set(job.plan.objects[item.object]!.relativeKey, item);
    return byKey;
  }
}

/** The invocations the test model saw, oldest first. */
export async function recordedRequests(model: Pick<StartedModel, 'url'>): Promise<RecordedRequest[]> {
  const res = await fetch(`${model.url}/debug/requests`);
  return (await res.json()) as RecordedRequest[];
}

/** Starts a test model and registers its stop with `cleanups` (run them in afterEach/afterAll). */
export async function model(
  env: Readonly<Record<string, string>>,
  cleanups: Array<() => Promise<unknown>>,
): Promise<StartedModel> {
  const m = await startTestModel(env);
  cleanups.push(() => m.stop());
  return m;
}

/** What TEST_MODEL_UPPERCASE does to a body: ASCII a–z to A–Z, every other byte as it is. */
export function upper(bytes: Buffer | string): Buffer {
  const b = Buffer.from(bytes);
  const out = Buffer.allocUnsafe(b.length);
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    out[i] = c >= 0x61 && c <= 0x7a ? c - 0x20 : c;
  }
  return out;
}

function parseLog(raw: string): LogLine | undefined {
  if (!raw.startsWith('{')) return undefined;
  try {
    const v = JSON.parse(raw) as LogLine;
    return typeof v.msg === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      isPlainObject(b) && isPlainObject(v) ? merge(b, v) : v === undefined ? undefined : structuredClone(v);
    if (v === undefined) delete out[k];
  }
  return out;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export interface CountingProxy {
  readonly url: string;
  /** The most invocations that were in flight at once. */
  readonly maxInFlight: number;
  close(): Promise<void>;
}

/**
 * A pass-through HTTP proxy in front of a model that counts invocations in flight, so a test can see
 * the sidecar's concurrency from outside (the model's answers are unchanged).
 */
export async function countingProxy(target: Pick<StartedModel, 'url'>): Promise<CountingProxy> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const upstream = new URL(target.url);
  let inFlight = 0;
  let max = 0;
  const server = http.createServer((req, res) => {
    const counted = req.url === '/invocations';
    if (counted) max = Math.max(max, ++inFlight);
    const done = () => {
      if (counted) inFlight--;
    };
    res.once('close', done);
    const out = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get maxInFlight() {
      return max;
    },
    async close() {
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
      agent.destroy();
      await closed;
    },
  };
}
