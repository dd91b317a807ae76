import { METRICS_NAMESPACE } from '../../../src/contract/metrics';
import type { Counters } from '../../../src/contract/results';

/**
 * One CloudWatch embedded-metric-format line: counters since the last line (so CloudWatch sums them)
 * and the mean invocation latency, dimensioned by job name. The awslogs driver ships stdout to
 * CloudWatch Logs, which turns these lines into metrics with no API call from the task.
 */
export function emfLine(
  jobName: string,
  delta: Counters,
  latencyMs: number | undefined,
  now = Date.now(),
): string {
  const metrics: Array<{ Name: string; Unit: string }> = [
    { Name: 'Records', Unit: 'Count' },
    { Name: 'FailedRecords', Unit: 'Count' },
    { Name: 'BytesIn', Unit: 'Bytes' },
    { Name: 'BytesOut', Unit: 'Bytes' },
    { Name: 'ObjectsCompleted', Unit: 'Count' },
    { Name: 'ObjectsFailed', Unit: 'Count' },
    { Name: 'Invocations', Unit: 'Count' },
    { Name: 'ModelErrors4xx', Unit: 'Count' },
    { Name: 'ModelErrors5xx', Unit: 'Count' },
    { Name: 'ModelTimeouts', Unit: 'Count' },
  ];
  const values: Record<string, number> = {
    Records: delta.records,
    FailedRecords: delta.failedRecords,
    BytesIn: delta.bytesIn,
    BytesOut: delta.bytesOut,
    ObjectsCompleted: delta.objectsCompleted,
    ObjectsFailed: delta.objectsFailed,
    Invocations: delta.invocations,
    ModelErrors4xx: delta.modelErrors4xx,
    ModelErrors5xx: delta.modelErrors5xx,
    ModelTimeouts: delta.modelTimeouts,
  };
  if (latencyMs !== undefined) {
    metrics.push({ Name: 'InvocationLatency', Unit: 'Milliseconds' });
    values.InvocationLatency = Math.round(latencyMs * 100) / 100;
  }
  return JSON.stringify({
    _aws: {
      Timestamp: now,
      CloudWatchMetrics: [{ Namespace: METRICS_NAMESPACE, Dimensions: [['JobName']], Metrics: metrics }],
    },
    JobName: jobName,
    ...values,
  });
}
