/**
 * The faults the harness injects, one kind per row of the report, and what is right for each. Every
 * choice (which record, which object, which request, when) is drawn from the run's seeded Rng, so a
 * seed replays the same faults.
 */
import type { Fault, FaultRequest } from '../support/s3-server';
import {
  type Dataset,
  type Expectation,
  INPUT_PREFIX,
  type JobOptions,
  kill,
  type Layout,
  modelOf,
  type Rng,
  type RunContext,
  readPlan,
  sidecarOf,
} from './harness';

export const KINDS = {
  modelKill: 'model process killed (SIGKILL) at a random moment',
  model500Transient: 'model answers 500 for particular records, then recovers',
  model500Persistent: 'model answers 500 for particular records, every time',
  model500Isolated: 'model answers 500 for particular records, isolated (MaxFailedRecordsPerObject)',
  modelTimeout: 'model slower than the invocation timeout for a record',
  sidecarKill: 'sidecar killed (SIGKILL) mid-upload',
  s3Transient: 'S3 answers 500/503 at random, then recovers',
  s3Stall: 'S3 stalls requests (0.3–2.5 s)',
  s3Persistent: 'S3 answers 500/503 for one object, every time',
} as const;
export type Kind = keyof typeof KINDS;

export interface Scenario {
  readonly kind: Kind;
  /** Count the S3 front's answers as injected faults (not when a stall only holds a request for a kill). */
  readonly countS3Faults?: boolean;
  /** What exactly this instance injects (printed). */
  readonly variant: string;
  readonly job: JobOptions;
  /** Environment for the CLI (and so for the sidecars and the model processes). */
  readonly env?: Record<string, string>;
  readonly arm?: (ctx: RunContext) => void | Promise<void>;
  /** Read after the run (a scenario may learn at run time which objects its fault could touch). */
  readonly expect: () => Expectation;
}

export interface ScenarioInput {
  readonly rng: Rng;
  readonly data: Dataset;
  readonly layout: Layout;
  readonly mode: 'local' | 'sfn';
  /** How long the fault-free run of this layout transformed (first input read to last output write). */
  readonly windowMs: number;
  /** How many S3 requests the fault-free run of this layout made. */
  readonly requests: number;
}

const S3_CAUSE = /fault injected by the test harness|InternalError|SlowDown|HTTP 50[03]/;

/** A random record (optionally of the given objects): its object, id and the marker the model looks for. */
function pickRecord(r: Rng, data: Dataset, among?: readonly string[]) {
  const objects = data.objects.filter((o) => !among || among.includes(o.relativeKey));
  const object = r.pick(objects);
  const id = r.pick(object.ids);
  // The id and its comma: `b-0000123,` occurs in no other record.
  return { object: object.relativeKey, id, marker: `${id},` };
}

/** `count` distinct request numbers among the first 90% of a run's requests, ascending. */
function requestIndices(r: Rng, count: number, requests: number): number[] {
  const span = Math.max(count, Math.floor(requests * 0.9));
  const chosen = new Set<number>();
  while (chosen.size < count) chosen.add(r.int(1, span));
  return [...chosen].sort((x, y) => x - y);
}

const others = (data: Dataset, key: string) =>
  data.objects.map((o) => o.relativeKey).filter((k) => k !== key);

/** Objects with no item in the given partition: a fault confined to that worker cannot touch them. */
async function untouched(ctx: RunContext, partition: number): Promise<string[]> {
  const plan = await readPlan(ctx.s3, ctx.deployment, ctx.jobName);
  if (!plan) return [];
  const touched = new Set(
    plan.partitions
      .find((p) => p.index === partition)
      ?.items.map((i) => plan.objects[i.object]!.relativeKey) ?? [],
  );
  return plan.objects.map((o) => o.relativeKey).filter((k) => !touched.has(k));
}

export const SCENARIOS: Record<Kind, (s: ScenarioInput) => Scenario> = {
  modelKill: ({ rng: r, layout, mode, windowMs }) => {
    const delay = r.int(0, Math.max(300, Math.round(windowMs * 0.9)));
    const state: { mustComplete: string[] } = { mustComplete: [] };
    return {
      kind: 'modelKill',
      variant: `${layout}: SIGKILL a worker's model ${delay} ms after the first input read`,
      job: { layout },
      // Slower answers than the fault-free run's, so a kill drawn from its window lands mid-transform.
      env: { TEST_MODEL_LATENCY_MS: '10-40' },
      arm: (ctx) => {
        let armed = false;
        ctx.onRequest((req) => {
          if (armed || req.operation !== 'GetObject' || !req.key.startsWith(INPUT_PREFIX)) return;
          armed = true;
          setTimeout(() => {
            void (async () => {
              if (ctx.finished()) return;
              // A worker still at work: its sidecar is alive (one that finished has nothing to lose).
              const plan = await readPlan(ctx.s3, ctx.deployment, ctx.jobName);
              const alive: number[] = [];
              for (const p of plan?.partitions ?? [])
                if (await modelOf(ctx.runId, p.index)) alive.push(p.index);
              if (alive.length === 0) {
                ctx.note(`no worker was still at work ${delay} ms after the first input read`);
                return;
              }
              const partition = ctx.rng.pick(alive);
              const model = await modelOf(ctx.runId, partition);
              state.mustComplete = await untouched(ctx, partition);
              if (model && kill(model.pid)) {
                ctx.injected();
                ctx.note(`killed the model of worker ${partition} (pid ${model.pid}) after ${delay} ms`);
              }
            })();
          }, delay);
        });
      },
      // Locally either status can be right (a model killed after its last answer hurts nothing); the
      // state machine retries the failed task, so there the job completes.
      expect: () => ({
        status: mode === 'sfn' ? 'Completed' : 'either',
        cause: /model/i,
        mustComplete: state.mustComplete,
      }),
    };
  },

  model500Transient: ({ rng: r, data, layout }) => {
    const { object, marker } = pickRecord(r, data);
    const times = r.int(1, 3);
    return {
      kind: 'model500Transient',
      variant: `${layout}: 500 for the mini-batch holding ${marker.slice(0, -1)} (${object}) ${times} time(s); 3 retries allowed`,
      job: { layout, modelClient: { InvocationsMaxRetries: 3 } },
      env: {
        TEST_MODEL_FAIL_MARKER: marker,
        TEST_MODEL_FAIL_STATUS: '500',
        TEST_MODEL_FAIL_TIMES: String(times),
      },
      arm: (ctx) => ctx.injected(times),
      expect: () => ({ status: 'Completed', modelErrors5xx: times }),
    };
  },

  model500Persistent: ({ rng: r, data, layout }) => {
    const { object, marker } = pickRecord(r, data);
    const retries = r.int(0, 3);
    return {
      kind: 'model500Persistent',
      variant: `${layout}: 500 for every request holding ${marker.slice(0, -1)} (${object}); ${retries} retries allowed`,
      job: { layout, modelClient: { InvocationsMaxRetries: retries } },
      env: { TEST_MODEL_FAIL_MARKER: marker, TEST_MODEL_FAIL_STATUS: r.pick(['500', '503']) },
      arm: (ctx) => ctx.injected(retries + 1),
      expect: () => ({
        status: 'Failed',
        cause: /HTTP 50[03]/,
        mustComplete: others(data, object),
        modelErrors5xx: retries + 1,
      }),
    };
  },

  model500Isolated: ({ rng: r, data, layout }) => {
    const { object, id, marker } = pickRecord(r, data);
    return {
      kind: 'model500Isolated',
      variant: `${layout}: 500 for every request holding ${id} (${object}); MaxFailedRecordsPerObject 5`,
      job: {
        layout,
        modelClient: { InvocationsMaxRetries: 1 },
        extensions: { MaxFailedRecordsPerObject: 5 },
      },
      env: { TEST_MODEL_FAIL_MARKER: marker },
      arm: (ctx) => ctx.injected(1),
      // The mini-batch is halved down to the one record, which goes to .errors.jsonl; the rest is output.
      expect: () => ({ status: 'Completed', isolated: new Map([[object, [id]]]) }),
    };
  },

  modelTimeout: ({ rng: r, data, layout }) => {
    const { object, marker } = pickRecord(r, data, ['a.csv', 'sub/c.csv']);
    return {
      kind: 'modelTimeout',
      variant: `${layout}: the model takes 2.5 s for ${marker.slice(0, -1)} (${object}); InvocationsTimeoutInSeconds 1`,
      job: { layout, modelClient: { InvocationsTimeoutInSeconds: 1, InvocationsMaxRetries: 1 } },
      env: { TEST_MODEL_SLOW_MARKER: marker, TEST_MODEL_SLOW_MS: '2500' },
      arm: (ctx) => ctx.injected(1),
      expect: () => ({
        status: 'Failed',
        cause: /InvocationsTimeoutInSeconds/,
        mustComplete: others(data, object),
      }),
    };
  },

  sidecarKill: ({ rng: r, layout, mode }) => {
    const step = r.pick([
      { op: 'CreateMultipartUpload', part: undefined },
      { op: 'UploadPart', part: 1 },
      { op: 'UploadPart', part: 2 },
      { op: 'CompleteMultipartUpload', part: undefined },
    ] as const);
    const shard = layout === 'sharded' ? r.int(0, 1) : undefined;
    const state: { mustComplete: string[] } = { mustComplete: [] };
    const what = `${step.op}${step.part ? ` #${step.part}` : ''}`;
    return {
      kind: 'sidecarKill',
      variant: `${layout}: SIGKILL the sidecar writing big.csv${shard !== undefined ? ` shard ${shard}` : ''} during its ${what}`,
      job: { layout },
      countS3Faults: false,
      arm: (ctx) => {
        const d = ctx.deployment;
        const [bucket, key] =
          shard === undefined
            ? [d.dataBucket, `${ctx.outPrefix}big.csv.out`]
            : [
                d.workBucket,
                `${d.workPrefix(ctx.jobName)}shards/big.csv/${String(shard).padStart(5, '0')}.out`,
              ];
        let fired = false;
        ctx.setRule((req: FaultRequest): Fault | undefined => {
          if (fired || req.bucket !== bucket || req.key !== key || req.operation !== step.op)
            return undefined;
          if (step.part !== undefined && req.query.get('partNumber') !== String(step.part)) return undefined;
          fired = true;
          void (async () => {
            const plan = await readPlan(ctx.s3, d, ctx.jobName);
            const objectIndex = plan?.objects.findIndex((o) => o.relativeKey === 'big.csv') ?? -1;
            const partition = plan?.partitions.find((p) =>
              p.items.some((i) => i.object === objectIndex && i.shard === (shard ?? 0)),
            )?.index;
            if (partition === undefined) return;
            state.mustComplete = await untouched(ctx, partition);
            const sidecar = await sidecarOf(ctx.runId, partition);
            if (sidecar && kill(sidecar.pid)) {
              ctx.injected();
              ctx.note(`killed sidecar ${partition} (pid ${sidecar.pid}) during ${what} of ${key}`);
            }
          })();
          // Hold the request so the process dies with it in flight.
          return { stallMs: 3000 };
        });
      },
      // The state machine retries the task; locally the job fails, saying which worker was killed.
      expect: () =>
        mode === 'sfn'
          ? { status: 'Completed' }
          : { status: 'Failed', cause: /SIGKILL/, mustComplete: state.mustComplete },
    };
  },

  s3Transient: ({ rng: r, layout, requests }) => {
    const budget = r.int(3, 12);
    const at = requestIndices(r, budget, requests);
    return {
      kind: 's3Transient',
      variant: `${layout}: ${budget} S3 requests (of about ${requests}) answered 500/503, none more than twice`,
      job: { layout },
      arm: (ctx) => {
        const seen = new Map<string, number>();
        let n = 0;
        ctx.setRule((req) => {
          n++;
          if (at.length === 0 || at[0]! > n) return undefined;
          // The SDK makes 4 attempts: failing a request at most twice means its retry succeeds. A
          // request already failed twice passes; the fault goes to the next one.
          const id = `${req.operation} ${req.bucket}/${req.key} ${req.query.get('partNumber') ?? ''} ${req.headers.range ?? ''}`;
          const times = seen.get(id) ?? 0;
          if (times >= 2) return undefined;
          seen.set(id, times + 1);
          at.shift();
          return { status: ctx.rng.pick([500, 503] as const) };
        });
      },
      expect: () => ({ status: 'Completed' }),
    };
  },

  s3Stall: ({ rng: r, layout, requests }) => {
    const budget = r.int(2, 6);
    const at = requestIndices(r, budget, requests);
    return {
      kind: 's3Stall',
      variant: `${layout}: ${budget} S3 requests (of about ${requests}) held 0.3–2.5 s`,
      job: { layout },
      arm: (ctx) => {
        let n = 0;
        ctx.setRule(() => {
          n++;
          if (at.length === 0 || at[0]! > n) return undefined;
          at.shift();
          return { stallMs: ctx.rng.int(300, 2500) };
        });
      },
      expect: () => ({ status: 'Completed' }),
    };
  },

  s3Persistent: ({ rng: r, data, layout }) => {
    const status = r.pick([500, 503] as const);
    const hasBig = data.objects.some((o) => o.relativeKey === 'big.csv');
    const variants = [
      'read the input',
      'write the output',
      ...(hasBig ? ['upload a part', 'complete the upload'] : []),
      ...(hasBig && layout === 'sharded' ? ['read a shard output during assembly'] : []),
    ] as const;
    const what = r.pick(variants);
    const object =
      what === 'read the input' || what === 'write the output'
        ? r.pick(data.objects.map((o) => o.relativeKey))
        : 'big.csv';
    const match = (ctx: RunContext, req: FaultRequest): boolean => {
      const d = ctx.deployment;
      const out = `${ctx.outPrefix}${object}.out`;
      const shards = `${d.workPrefix(ctx.jobName)}shards/${object}/`;
      if (req.bucket !== d.dataBucket && req.bucket !== d.workBucket) return false;
      switch (what) {
        case 'read the input':
          return req.operation === 'GetObject' && req.key === INPUT_PREFIX + object;
        case 'write the output':
          // The object's final output, or (for a sharded object) its shard outputs.
          return (
            ['PutObject', 'UploadPart', 'CreateMultipartUpload'].includes(req.operation) &&
            (req.key === out || req.key.startsWith(shards))
          );
        case 'upload a part':
          return req.operation === 'UploadPart' && (req.key === out || req.key.startsWith(shards));
        case 'complete the upload':
          return (
            req.operation === 'CompleteMultipartUpload' && (req.key === out || req.key.startsWith(shards))
          );
        default:
          return req.operation === 'GetObject' && req.key.startsWith(shards);
      }
    };
    return {
      kind: 's3Persistent',
      variant: `${layout}: ${status} to every request to ${what} of ${object}`,
      job: { layout },
      arm: (ctx) => {
        ctx.setRule((req) => (match(ctx, req) ? { status } : undefined));
      },
      expect: () => ({ status: 'Failed', cause: S3_CAUSE, mustComplete: others(data, object) }),
    };
  },
};
