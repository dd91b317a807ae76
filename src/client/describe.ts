import { failureReason, type TransformJobDescription } from '../contract/description';
import { DescribeExecutionCommand, type DescribeExecutionCommandOutput } from '@aws-sdk/client-sfn';
import { jobOfExecution } from './execution-history';
import type { TransformJobRequest } from '../job/schema';
import { readJsonIfExists } from '../storage/json';
import { stateFailureCategory } from '../lifecycle/finalize';
import { jobCounters, readReports } from '../lifecycle/reports';
import type { JobRef } from '../contract/state';
import { summaryUri } from '../contract/layout';
import type { Counters } from '../contract/results';
import type { Storage } from '../storage/storage';
import { awsErrorName, awsFailure, BatchTransformError, type CommandSender } from './aws';
import { stateMachineNameOf } from './deployment';
import { isTerminal, jobStatusOf, type TransformJobStatus } from './status';

/** Where a job stands, summed over its workers. `totalBytes` (the input's size) is known once it is planned. */
export interface JobProgress extends Counters {
  readonly skippedObjects: number;
  readonly totalBytes?: number;
}

/**
 * DescribeTransformJob's shape for a job on the deployed stack: the request's fields, the status,
 * FailureReason and times, plus our Progress counters (final once the job ended, live while it runs)
 * and the Step Functions execution behind it.
 */
export interface JobDescription {
  readonly TransformJobName: string;
  readonly TransformJobStatus: TransformJobStatus;
  readonly FailureReason?: string;
  readonly ModelName?: string;
  readonly TransformInput?: TransformJobRequest['TransformInput'];
  readonly TransformOutput?: TransformJobRequest['TransformOutput'];
  readonly TransformResources?: TransformJobRequest['TransformResources'];
  readonly CreationTime: string;
  readonly TransformStartTime?: string;
  readonly TransformEndTime?: string;
  readonly Progress?: JobProgress;
  /** Why there are no Progress counters (not planned yet, the work location unreadable, …). */
  readonly ProgressUnavailable?: string;
  readonly FailedObjects?: TransformJobDescription['FailedObjects'];
  readonly SummaryUri?: string;
  /** The Step Functions execution that runs the job. */
  readonly ExecutionArn: string;
  /** The request's other fields as given (Environment, DataProcessing, BatchStrategy, …). */
  readonly [field: string]: unknown;
}

/** What describe remembers between polls of one job: the Validate step's JobRef, once it exists. */
export interface DescribeCache {
  job?: JobRef;
}

/**
 * DescribeExecution, made a job description. While the job runs (and for a job that ended without
 * an output, Failed or Stopped) the counters are read from its work location: the summary when there
 * is one, else the sidecars' progress files. That part is best effort: when it cannot be read,
 * `ProgressUnavailable` says why and the rest of the description stands.
 */
export async function describeJob(
  sfn: CommandSender,
  storage: () => Storage,
  executionArn: string,
  jobName: string,
  cache: DescribeCache = {},
): Promise<JobDescription> {
  let exec: DescribeExecutionCommandOutput;
  try {
    exec = await sfn.send(new DescribeExecutionCommand({ executionArn }));
  } catch (e) {
    if (awsErrorName(e) === 'ExecutionDoesNotExist') {
      const machine = stateMachineNameOf(executionArn.slice(0, executionArn.lastIndexOf(':')));
      throw new BatchTransformError(
        'NotFound',
        `no transform job named "${jobName}" (state machine ${machine})`,
        {
          cause: e,
        },
      );
    }
    throw awsFailure(e, `describing transform job "${jobName}"`);
  }

  const { request, scheduled } = requestOf(parseJson(exec.input));
  const output = exec.status === 'SUCCEEDED' ? parseJson(exec.output) : undefined;
  const status = jobStatusOf(exec.status, output);
  // Tags stay: DescribeTransformJob has none (SageMaker's ListTags gives them), but this client's
  // description carries the request's fields, as the deployment applied them to the job's tasks.
  const { TransformJobName: requestedName, ...requestFields } = request;
  const reason = failureReasonOf(exec, status);
  let d: Record<string, unknown> = {
    // A schedule's request names a template ("nightly" runs as "nightly-20300131020000"): until the
    // Validate step's job is read, the execution's name is the better guess.
    TransformJobName:
      !scheduled && typeof requestedName === 'string' ? requestedName : (exec.name ?? jobName),
    TransformJobStatus: status,
    ...requestFields,
    CreationTime: iso(exec.startDate) ?? new Date(0).toISOString(),
    ...(exec.stopDate ? { TransformEndTime: iso(exec.stopDate) } : {}),
  };
  const final = isObject(output) && isObject(output.Progress);
  if (isObject(output)) d = { ...d, ...output };
  let shown = status;
  if (!final) {
    const { [STOPPING]: stopping, ...progress } = await progressOf(sfn, storage, executionArn, status, cache);
    d = { ...d, ...progress };
    if (stopping && !stoppedLongAgo(exec.stopDate)) shown = 'Stopping';
  }
  return {
    ...d,
    TransformJobStatus: shown,
    ...(reason ? { FailureReason: reason } : {}),
    ExecutionArn: exec.executionArn ?? executionArn,
  } as JobDescription;
}

/**
 * Marks a stopped execution whose job's cleanup has not written the summary yet: StopExecution ends
 * the execution at once, and the job is `Stopping` (as SageMaker's StopTransformJob describes) until
 * the cleanup rule has stopped its tasks, removed its outputs and recorded it Stopped.
 */
const STOPPING = Symbol('stopping');
/**
 * After this long a stopped execution whose cleanup never recorded the job is shown Stopped anyway:
 * the cleanup Lambda runs at most 15 minutes, and a waiter must not poll forever.
 */
const STOPPING_AT_MOST_MS = 30 * 60 * 1000;

function stoppedLongAgo(stopDate: Date | undefined): boolean {
  return stopDate !== undefined && Date.now() - new Date(stopDate).getTime() > STOPPING_AT_MOST_MS;
}

/** The summary or the live counters, or why neither is there. */
async function progressOf(
  sfn: CommandSender,
  storage: () => Storage,
  executionArn: string,
  status: TransformJobStatus,
  cache: DescribeCache,
): Promise<Record<string, unknown> & { [STOPPING]?: true }> {
  try {
    cache.job ??= await jobOfExecution(sfn, executionArn);
  } catch (e) {
    return { ProgressUnavailable: `cannot read the execution's history: ${(e as Error).message}` };
  }
  const job = cache.job;
  if (!job) {
    return {
      ProgressUnavailable:
        status === 'InProgress' ? 'the job has not been validated yet' : 'the job never started',
    };
  }
  try {
    const store = storage();
    if (isTerminal(status)) {
      // The summary (finalize's, or the one cleanup writes for a stopped job) carries everything.
      const summary = await readJsonIfExists<TransformJobDescription>(store, summaryUri(job.workUri));
      if (summary) {
        const { TransformJobStatus: _status, ...rest } = summary;
        return { ...rest, TransformJobName: job.jobName };
      }
    }
    const stopping = status === 'Stopped' ? ({ [STOPPING]: true } as const) : {};
    const reports = await readReports(store, job.workUri);
    if (!reports.plan) {
      return {
        TransformJobName: job.jobName,
        ProgressUnavailable:
          status === 'InProgress'
            ? 'the job has not been planned yet'
            : 'the job ended before it was planned',
        ...stopping,
      };
    }
    const startedAt = [...reports.results.values()].map((r) => r.startedAt).sort()[0];
    return {
      TransformJobName: job.jobName,
      ...(startedAt ? { TransformStartTime: startedAt } : {}),
      Progress: {
        ...jobCounters(reports),
        skippedObjects: reports.plan.skipped.length,
        totalBytes: reports.plan.totalBytes,
      } satisfies JobProgress,
      SummaryUri: summaryUri(job.workUri),
      ...stopping,
    };
  } catch (e) {
    return {
      TransformJobName: job.jobName,
      ProgressUnavailable: `cannot read the job's progress under ${job.workUri}: ${(e as Error).message}`,
    };
  }
}

/**
 * The execution's error and cause as a FailureReason. A job's own failures end with the cause set to
 * its FailureReason already; a timeout or an abort with a reason gets one made from what is there.
 */
function failureReasonOf(
  exec: DescribeExecutionCommandOutput,
  status: TransformJobStatus,
): string | undefined {
  if (status === 'Completed' || status === 'InProgress') return undefined;
  if (status === 'Failed' && exec.status === 'SUCCEEDED') return undefined; // the output has its own
  let reason = exec.cause?.trim() || undefined;
  if (!reason && exec.status === 'TIMED_OUT')
    reason = 'the execution ran longer than the state machine allows';
  if (!reason && exec.error && status === 'Failed') reason = exec.error;
  if (!reason) return undefined;
  // A job's own failure carries its category already; else it is made from the execution's error.
  return failureReason(stateFailureCategory({ Error: exec.error, Cause: reason }), reason);
}

/** The execution input is a bare request (CLI, console) or a schedule's `{ request, scheduledTime }`. */
function requestOf(input: unknown): { request: Record<string, unknown>; scheduled: boolean } {
  if (!isObject(input)) return { request: {}, scheduled: false };
  if ('request' in input && !('TransformJobName' in input) && isObject(input.request))
    return { request: input.request, scheduled: true };
  return { request: input, scheduled: false };
}

function parseJson(text: string | undefined): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function iso(d: Date | string | undefined): string | undefined {
  if (d === undefined) return undefined;
  return (d instanceof Date ? d : new Date(d)).toISOString();
}
