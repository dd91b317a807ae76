import {
  type FailureCategory,
  failureReason,
  type TransformJobDescription,
  type TransformJobStatus,
} from '../contract/description';
import type { NormalizedJob, StoredJob } from '../contract/job';
import { summaryUri } from '../contract/layout';
import type { JobRef, StateFailure } from '../contract/state';
import { readJsonIfExists, writeJson } from '../storage/json';
import type { Storage } from '../storage/storage';
import { writeCaptureManifests } from './capture';
import { jobCounters, objectOutcomes, readReports } from './reports';

/**
 * The finalize stage: reads what the workers reported, decides the job's status, writes
 * `<work>/summary.json` and returns a DescribeTransformJob-shaped result. With `failure` (a caught
 * error from an earlier state) the job is Failed and the reason says why, in words.
 */
export async function finalizeStage(
  ref: JobRef,
  storage: Storage,
  opts: {
    failure?: StateFailure;
    stopped?: boolean;
    now?: Date;
    /** More to say after the failure's own reason (e.g. what assembling after it could not do). */
    notes?: readonly string[];
  } = {},
): Promise<TransformJobDescription> {
  const stored = await readJsonIfExists<StoredJob>(storage, ref.jobUri);
  const reports = await readReports(storage, ref.workUri);
  const plan = reports.plan;
  const outcomes = objectOutcomes(reports);
  const failed = outcomes.filter((o) => o.status === 'Failed');
  const counters = jobCounters(reports);
  const fatal = [...reports.results.values()].find((r) => r.fatal)?.fatal;

  const failedObjects = failed.slice(0, 100).map((o) => ({
    uri: plan!.objects[o.object]!.uri,
    reason: o.error?.message ?? 'failed',
    ...(o.error?.offset !== undefined ? { offset: o.error.offset } : {}),
  }));
  let status: TransformJobStatus = 'Completed';
  let reason: string | undefined;
  /** Whose failure it is: the worker's own account first, then what the orchestrator caught. */
  const fatalCategory = [...reports.results.values()].find((r) => r.fatal)?.fatalCategory;
  let category: FailureCategory = 'ClientError';
  const describeFailed = () =>
    `${failed.length} of ${outcomes.length} input object(s) failed: ${failedObjects
      .slice(0, 3)
      .map((f) => `${f.uri}: ${f.reason}${withOffset(f.reason, f.offset)}`)
      .join('; ')}${failed.length > 3 ? '; …' : ''}`;
  const pending = plan ? outcomes.filter((o) => o.status === 'Pending') : [];
  const pendingUris = () =>
    `${pending
      .slice(0, 3)
      .map((o) => plan!.objects[o.object]!.uri)
      .join(', ')}${pending.length > 3 ? `, and ${pending.length - 3} more` : ''}`;
  if (opts.stopped) {
    status = 'Stopped';
  } else if (opts.failure) {
    status = 'Failed';
    // The worker's own account (fatal) first, then what the orchestrator saw (exit codes, output),
    // then the objects it cost: the ones that failed and the ones never finished.
    const seen = describeStateFailure(opts.failure);
    reason = fatal ? (seen.includes(fatal) ? seen : `${fatal}; ${seen}`) : seen;
    category = fatal ? (fatalCategory ?? 'InternalServerError') : stateFailureCategory(opts.failure);
    if (failed.length > 0) reason += `; ${describeFailed()}`;
    if (pending.length > 0) reason += `; not finished: ${pendingUris()}`;
    for (const note of opts.notes ?? []) reason += `; ${note}`;
  } else if (fatal) {
    status = 'Failed';
    reason = fatal;
    category = fatalCategory ?? 'InternalServerError';
    if (pending.length > 0) reason += `; not finished: ${pendingUris()}`;
  } else if (failed.length > 0) {
    status = 'Failed';
    reason = describeFailed();
  } else if (pending.length > 0) {
    status = 'Failed';
    reason = `${pending.length} input object(s) were never processed: ${pendingUris()}`;
    category = 'InternalServerError';
  }

  const job = stored?.job;
  const results = [...reports.results.values()];
  const started = results.map((r) => r.startedAt).sort()[0];
  // Data capture is written "once the transform job completes" (SageMaker's words): a Failed or
  // Stopped job captures nothing. A capture that cannot be written fails the job, as an output would.
  if (status === 'Completed' && job?.DataCaptureConfig && plan) {
    const startTime = new Date(started ?? stored?.creationTime ?? ref.creationTime);
    try {
      await writeCaptureManifests(job, plan, storage, startTime);
    } catch (e) {
      status = 'Failed';
      category = 'ClientError';
      reason = `DataCaptureConfig.DestinationS3Uri: could not write the data capture manifests under ${job.DataCaptureConfig.DestinationS3Uri}: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  const description: TransformJobDescription = {
    TransformJobName: ref.jobName,
    TransformJobStatus: status,
    ...(reason
      ? { FailureReason: failureReason(category, `Transform job "${ref.jobName}": ${reason}`) }
      : {}),
    ModelName: ref.modelName,
    ...(job?.MaxConcurrentTransforms !== undefined
      ? { MaxConcurrentTransforms: job.MaxConcurrentTransforms }
      : {}),
    ...(job?.MaxPayloadInMB !== undefined ? { MaxPayloadInMB: job.MaxPayloadInMB } : {}),
    ...(job?.BatchStrategy ? { BatchStrategy: job.BatchStrategy } : {}),
    Environment: job?.Environment ?? {},
    ModelClientConfig: job?.ModelClientConfig ?? {
      InvocationsTimeoutInSeconds: 600,
      InvocationsMaxRetries: 3,
    },
    TransformInput: job?.TransformInput as NormalizedJob['TransformInput'],
    TransformOutput: job?.TransformOutput as NormalizedJob['TransformOutput'],
    TransformResources: job?.TransformResources ?? {
      InstanceType: ref.instanceType,
      InstanceCount: ref.instanceCount,
    },
    DataProcessing: job?.DataProcessing ?? { InputFilter: '$', OutputFilter: '$', JoinSource: 'None' },
    CreationTime: stored?.creationTime ?? ref.creationTime,
    ...(started ? { TransformStartTime: started } : {}),
    TransformEndTime: (opts.now ?? new Date()).toISOString(),
    Progress: { ...counters, skippedObjects: plan?.skipped.length ?? 0 },
    FailedObjects: failedObjects,
    SummaryUri: summaryUri(ref.workUri),
    ...(job?.IgnoredFields ? { IgnoredFields: job.IgnoredFields } : {}),
  };
  await writeJson(storage, summaryUri(ref.workUri), description);
  return description;
}

/**
 * Turns a Step Functions catch (`{Error, Cause}`) into a sentence: a Lambda error's message, an ECS
 * task's stop reason and container exit codes, or the raw cause.
 */
export function describeStateFailure(f: StateFailure): string {
  const cause = f.Cause ?? '';
  // A Distributed Map reports a failed item as its own error: the task's reason is in the child
  // execution; the partitions' results (read beside this) say which objects did not finish.
  if (f.Error === 'States.ExceedToleratedFailureThreshold') {
    return `a partition's task failed after its retries (${cause || 'the Map run failed'})`;
  }
  /** The fields read from a Lambda error or an ECS task description. */
  interface Cause {
    errorMessage?: unknown;
    StoppedReason?: string;
    Containers?: Array<{ Name?: string; ExitCode?: number; Reason?: string }>;
  }
  let parsed: Cause | null;
  try {
    parsed = JSON.parse(cause) as Cause | null;
  } catch {
    return [f.Error, cause].filter(Boolean).join(': ') || 'failed without a reason';
  }
  if (parsed && typeof parsed.errorMessage === 'string') return parsed.errorMessage;
  if (parsed && (parsed.StoppedReason || parsed.Containers)) {
    const containers = (parsed.Containers ?? [])
      .filter((c) => c.ExitCode !== 0 || c.Reason)
      .map((c) => `${c.Name} exited ${c.ExitCode ?? '?'}${c.Reason ? ` (${c.Reason})` : ''}`)
      .join(', ');
    return `worker task stopped: ${parsed.StoppedReason ?? 'unknown reason'}${containers ? `; ${containers}` : ''}`;
  }
  return [f.Error, cause].filter(Boolean).join(': ');
}

/**
 * The FailureReason category of what Step Functions caught (docs/JOB.md, "FailureReason"): the
 * request, its input or its model's artifacts are the user's (ClientError); no capacity for the task is
 * CapacityError; a task, Lambda or timeout of our own is InternalServerError.
 */
export function stateFailureCategory(f: StateFailure): FailureCategory {
  const usersOwn = ['JobValidationError', 'ResourceInUse', 'PlanError', 'ModelDataError'];
  if (f.Error && usersOwn.includes(f.Error)) return 'ClientError';
  // ECS RunTask's placement failures (`RESOURCE:CPU`, `RESOURCE:MEMORY`, `RESOURCE:GPU`) and
  // capacity providers that cannot scale out.
  if (/RESOURCE:|Capacity is unavailable|capacity provider/i.test(f.Cause ?? '')) return 'CapacityError';
  return 'InternalServerError';
}

/** ` (record at byte N)` unless the reason already says where. */
function withOffset(reason: string, offset: number | undefined): string {
  return offset === undefined || reason.includes(`offset ${offset}`) ? '' : ` (record at byte ${offset})`;
}
