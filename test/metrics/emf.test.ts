import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METRICS_NAMESPACE } from '../../src/contract/metrics';
import type { StartedModel } from '../fixtures/models/start';
import { model, SidecarFixture } from '../sidecar/harness';

/**
 * The sidecar's metrics are CloudWatch embedded-metric-format lines on stdout (the awslogs driver
 * ships them; CloudWatch Logs turns them into metrics). Run a real sidecar with METRICS=emf against a
 * model that fails some requests and check what CloudWatch would receive.
 */

let fx: SidecarFixture;
let flaky: StartedModel;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  [fx, flaky] = await Promise.all([
    SidecarFixture.start(),
    // Every body holding BAD gets a 500 twice, then succeeds: retries the metrics must count.
    model(
      {
        TEST_MODEL_UPPERCASE: '1',
        TEST_MODEL_FAIL_MARKER: 'BAD',
        TEST_MODEL_FAIL_TIMES: '2',
        TEST_MODEL_RECORD_LIMIT: '0',
      },
      cleanups,
    ),
  ]);
});
afterAll(async () => {
  await Promise.all(cleanups.map((c) => c()));
  await fx?.stop();
});

interface EmfLine {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: Array<{
      Namespace: string;
      Dimensions: string[][];
      Metrics: Array<{ Name: string; Unit: string }>;
    }>;
  };
  JobName: string;
  [metric: string]: unknown;
}

describe('embedded-metric-format lines', () => {
  it('sum to the job: records, bytes, objects, invocations, 5xx answers and latency, dimensioned by job', async () => {
    const a = Array.from({ length: 300 }, (_, i) => `a,${i}\n`).join('');
    const b = Array.from({ length: 200 }, (_, i) => `b,${i},${i === 150 ? 'BAD' : 'ok'}\n`).join('');
    const job = await fx.prepare('emf', {
      objects: { 'a.csv': a, 'b.csv': b },
      request: { BatchStrategy: 'MultiRecord', MaxPayloadInMB: 1 },
    });
    const run = await fx.run(job, { model: flaky, env: { METRICS: 'emf', PROGRESS_INTERVAL_MS: '50' } });
    expect(run.code, run.stderr).toBe(0);

    const lines = run.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as EmfLine);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      const [directive] = line._aws.CloudWatchMetrics;
      expect(directive!.Namespace).toBe(METRICS_NAMESPACE);
      expect(directive!.Dimensions).toEqual([['JobName']]);
      expect(line.JobName).toBe(job.name);
      // Every declared metric has a numeric value on the line (CloudWatch drops the line otherwise).
      for (const m of directive!.Metrics) expect(typeof line[m.Name], m.Name).toBe('number');
    }
    const sum = (name: string) => lines.reduce((s, l) => s + (typeof l[name] === 'number' ? l[name] : 0), 0);
    expect(sum('Records')).toBe(500);
    expect(sum('BytesIn')).toBe(Buffer.byteLength(a) + Buffer.byteLength(b));
    expect(sum('BytesOut')).toBe(Buffer.byteLength(a) + Buffer.byteLength(b));
    expect(sum('ObjectsCompleted')).toBe(2);
    expect(sum('ObjectsFailed')).toBe(0);
    // Two 500s before the batch with BAD went through: three invocations for it, one for the other.
    expect(sum('ModelErrors5xx')).toBe(2);
    expect(sum('Invocations')).toBe(4);
    const latencies = lines.filter((l) => typeof l.InvocationLatency === 'number');
    expect(latencies.length).toBeGreaterThan(0);
    for (const l of latencies) expect(l.InvocationLatency as number).toBeGreaterThan(0);
  });
});
