import type { Plan } from '../contract/plan';
import { planUri, progressUri, resultUri } from '../contract/layout';
import {
  addCounters,
  type Counters,
  emptyCounters,
  type PartitionProgress,
  type PartitionResult,
} from '../contract/results';
import type { Storage } from '../storage/storage';
import { readJsonIfExists } from '../storage/json';

/** Everything the sidecars of a job have reported so far. */
export interface JobReports {
  readonly plan?: Plan;
  readonly results: ReadonlyMap<number, PartitionResult>;
  readonly progress: ReadonlyMap<number, PartitionProgress>;
}

export async function readReports(storage: Storage, workUri: string): Promise<JobReports> {
  const plan = await readJsonIfExists<Plan>(storage, planUri(workUri));
  const results = new Map<number, PartitionResult>();
  const progress = new Map<number, PartitionProgress>();
  if (plan) {
    await Promise.all(
      plan.partitions.map(async (p) => {
        const [r, g] = await Promise.all([
          readJsonIfExists<PartitionResult>(storage, resultUri(workUri, p.index)),
          // Progress is a hint (which object a partition was on), rewritten while the sidecar runs: a
          // document its writer was killed in the middle of (a loopback S3 server or a disk keeps the
          // torn bytes; S3 itself never does) is read as no progress, so the reason still names the
          // partition's objects from the plan rather than the parse error.
          readJsonIfExists<PartitionProgress>(storage, progressUri(workUri, p.index)).catch((e: Error) => {
            if (e.message.includes('is not valid JSON')) return undefined;
            throw e;
          }),
        ]);
        if (r) results.set(p.index, r);
        if (g) progress.set(p.index, g);
      }),
    );
  }
  return { ...(plan ? { plan } : {}), results, progress };
}

/**
 * Per-object outcome: an object succeeded only if every one of its shards did. `CompletedEarlier`:
 * the job it resumes from completed it (`Extensions.ResumeFrom`), and no partition of this job has it.
 */
export interface ObjectOutcome {
  readonly object: number;
  readonly status: 'Completed' | 'CompletedEarlier' | 'Failed' | 'Pending';
  readonly error?: { readonly message: string; readonly offset?: number };
  readonly failedRecords: number;
}

export function objectOutcomes(reports: JobReports): ObjectOutcome[] {
  const plan = reports.plan;
  if (!plan) return [];
  const byObject = new Map<
    number,
    { done: number; failed?: ObjectOutcome['error']; failedRecords: number }
  >();
  for (const r of reports.results.values()) {
    for (const item of r.items) {
      const entry = byObject.get(item.object) ?? { done: 0, failedRecords: 0 };
      entry.done += 1;
      entry.failedRecords += item.failedRecords;
      if (item.status === 'Failed' && !entry.failed) entry.failed = item.error ?? { message: 'failed' };
      byObject.set(item.object, entry);
    }
  }
  return plan.objects.map((o, object) => {
    if (o.completedEarlier) return { object, status: 'CompletedEarlier', failedRecords: 0 };
    const e = byObject.get(object);
    if (e?.failed) return { object, status: 'Failed', error: e.failed, failedRecords: e.failedRecords };
    if (e && e.done >= o.shardCount) return { object, status: 'Completed', failedRecords: e.failedRecords };
    return { object, status: 'Pending', failedRecords: e?.failedRecords ?? 0 };
  });
}

/** Counters summed over partitions: final results where present, else the latest progress. */
export function jobCounters(reports: JobReports): Counters {
  let total = emptyCounters();
  for (const p of reports.plan?.partitions ?? []) {
    const c = reports.results.get(p.index)?.counters ?? reports.progress.get(p.index)?.counters;
    if (c) total = addCounters(total, c);
  }
  if (reports.plan) {
    // Objects, not items: a sharded object counts once, when all its shards are in.
    const outcomes = objectOutcomes(reports);
    total.objectsTotal = reports.plan.objects.length;
    total.objectsCompleted = outcomes.filter((o) => o.status === 'Completed').length;
    total.objectsFailed = outcomes.filter((o) => o.status === 'Failed').length;
    total.objectsCompletedEarlier = outcomes.filter((o) => o.status === 'CompletedEarlier').length;
  }
  return total;
}
