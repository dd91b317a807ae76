import { type S3Harness, startS3Server } from '../support/s3-server';
import { LOCAL_BUCKET, localDeployment } from './local-runner';
import type { StateMachineDeployment, SynthesizedStack } from './state-machine';
import {
  type Dataset,
  type Deployment,
  expectedOutput,
  INPUT_PREFIX,
  type Layout,
  makeDataset,
  removeRun,
  rng,
  runJob,
  type Verdict,
  verify,
} from './harness';
import { KINDS, type Kind, SCENARIOS } from './scenarios';

export type Mode = Deployment['mode'];

export interface RunReport extends Verdict {
  readonly kind: Kind;
  readonly mode: Mode;
  readonly variant: string;
  readonly runId: string;
  readonly seed: number;
  readonly ms: number;
  readonly faults: number;
  readonly notes: readonly string[];
  readonly reason?: string;
}

/**
 * One loopback S3 server, one dataset, the deployments (local runner, synthesized state machine),
 * the fault-free run per deployment and layout, and then any number of faulty runs, each checked
 * against the fault-free bytes. Used by run.ts and faults.test.ts.
 */
export class FaultSession {
  private readonly baselines = new Map<
    string,
    { outputs: Map<string, Buffer>; windowMs: number; requests: number }
  >();
  private counter = 0;

  private constructor(
    readonly s3: S3Harness,
    readonly data: Dataset,
    readonly seed: number,
    private readonly deployments: ReadonlyMap<Mode, Deployment>,
    private readonly stack: SynthesizedStack | undefined,
  ) {}

  static async start(seed: number, opts: { bigMiB: number; modes: readonly Mode[] }): Promise<FaultSession> {
    // The state machine pulls in aws-cdk-lib and synthesizes: only when asked for.
    const sfn = opts.modes.includes('sfn') ? await import('./state-machine') : undefined;
    const stack = sfn?.synthesizeStack();
    const s3 = await startS3Server({ buckets: [LOCAL_BUCKET, ...(stack?.buckets ?? [])] });
    const deployments = new Map<Mode, Deployment>();
    try {
      if (opts.modes.includes('local')) deployments.set('local', localDeployment(s3));
      if (sfn && stack) deployments.set('sfn', await sfn.stateMachineDeployment(s3, stack));
      const data = makeDataset(seed, opts);
      for (const bucket of new Set([...deployments.values()].map((d) => d.dataBucket))) {
        await s3.seed(
          bucket,
          data.objects.map((o) => [INPUT_PREFIX + o.relativeKey, o.body] as const),
        );
      }
      return new FaultSession(s3, data, seed, deployments, stack);
    } catch (e) {
      await s3.stop();
      stack?.synth.dispose();
      throw e;
    }
  }

  async stop(): Promise<void> {
    await (this.deployments.get('sfn') as StateMachineDeployment | undefined)?.stop();
    await this.s3.stop();
    this.stack?.synth.dispose();
  }

  private deployment(mode: Mode): Deployment {
    const d = this.deployments.get(mode);
    if (!d) throw new Error(`the session was started without the ${mode} deployment`);
    return d;
  }

  private nextRunId(tag: string): string {
    // Job names allow letters, digits and hyphens. The process id keeps two sessions with the same
    // seed apart: a run's processes are found (and any left over killed) by this name.
    return `ft-${this.seed}-${process.pid.toString(36)}-${tag}-${++this.counter}`;
  }

  /**
   * The fault-free run of a deployment and layout: its outputs must equal the oracle (the input
   * upper-cased), and become the bytes faulty runs are compared with. Throws when it does not hold:
   * nothing else can be judged then.
   */
  async baseline(mode: Mode, layout: Layout): Promise<{ ms: number; windowMs: number }> {
    const d = this.deployment(mode);
    const runId = this.nextRunId(`base-${layout}`);
    const oracle = new Map(this.data.objects.map((o) => [o.relativeKey, expectedOutput(o)]));
    const run = await runJob(this.s3, d, this.data, runId, { layout }, () => {}, { seed: this.seed });
    const verdict = await verify(this.s3, d, this.data, run, runId, oracle, { status: 'Completed' });
    if (verdict.problems.length > 0 || verdict.outputsPresent !== this.data.objects.length) {
      throw new Error(`the fault-free ${mode} ${layout} run is wrong: ${verdict.problems.join('; ')}`);
    }
    const outputs = new Map<string, Buffer>();
    for (const o of this.data.objects) {
      outputs.set(
        o.relativeKey,
        await this.s3.storage.readAll(`s3://${d.dataBucket}/out/${runId}/${o.relativeKey}.out`),
      );
    }
    await removeRun(this.s3, d, runId);
    const windowMs = run.transformWindowMs ?? run.ms;
    this.baselines.set(`${mode}/${layout}`, { outputs, windowMs, requests: run.requests });
    return { ms: run.ms, windowMs };
  }

  /** One run with one fault of `kind`, its details drawn from `seed`. */
  async run(kind: Kind, seed: number, mode: Mode, layout?: Layout): Promise<RunReport> {
    const d = this.deployment(mode);
    const r = rng(seed);
    const chosen = layout ?? r.pick(['whole', 'sharded'] as const);
    if (!this.baselines.has(`${mode}/${chosen}`)) await this.baseline(mode, chosen);
    const base = this.baselines.get(`${mode}/${chosen}`)!;
    const scenario = SCENARIOS[kind]({
      rng: r,
      data: this.data,
      layout: chosen,
      mode,
      windowMs: base.windowMs,
      requests: base.requests,
    });
    const runId = this.nextRunId(`${mode}-${kind.toLowerCase().slice(0, 10)}`);
    const run = await runJob(this.s3, d, this.data, runId, scenario.job, scenario.arm ?? (() => {}), {
      seed,
      ...(scenario.env ? { env: scenario.env } : {}),
      ...(scenario.countS3Faults === false ? { countS3Faults: false } : {}),
    });
    const verdict = await verify(this.s3, d, this.data, run, runId, base.outputs, scenario.expect());
    if (run.faults === 0 && kind !== 'modelKill') {
      // A scenario whose fault never fired proves nothing.
      verdict.problems.push('no fault was injected');
    }
    await removeRun(this.s3, d, runId);
    return {
      ...verdict,
      kind,
      mode,
      variant: scenario.variant,
      runId,
      seed,
      ms: run.ms,
      faults: run.faults,
      notes: run.notes,
      ...(run.description?.FailureReason ? { reason: run.description.FailureReason } : {}),
    };
  }
}

export interface KindSummary {
  readonly kind: Kind;
  readonly mode: Mode;
  readonly runs: number;
  readonly faults: number;
  readonly correct: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly uploadsLeft: number;
  readonly scratchLeft: number;
}

export function summarize(reports: readonly RunReport[]): KindSummary[] {
  const out: KindSummary[] = [];
  for (const mode of ['local', 'sfn'] as const) {
    for (const kind of Object.keys(KINDS) as Kind[]) {
      const mine = reports.filter((r) => r.kind === kind && r.mode === mode);
      if (mine.length === 0) continue;
      out.push({
        kind,
        mode,
        runs: mine.length,
        faults: mine.reduce((s, r) => s + r.faults, 0),
        correct: mine.filter((r) => r.problems.length === 0).length,
        lost: mine.reduce((s, r) => s + r.lost, 0),
        duplicated: mine.reduce((s, r) => s + r.duplicated, 0),
        uploadsLeft: mine.reduce((s, r) => s + r.uploadsLeft, 0),
        scratchLeft: mine.reduce((s, r) => s + r.scratchLeft, 0),
      });
    }
  }
  return out;
}
