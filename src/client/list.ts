import {
  type ExecutionListItem,
  type ExecutionStatus,
  ListExecutionsCommand,
  type ListExecutionsCommandOutput,
} from '@aws-sdk/client-sfn';
import { awsFailure, BatchTransformError, type CommandSender } from './aws';
import { LIST_MAX_RESULTS } from './defaults';
import { iso } from './describe';
import { executionStatusesFor, jobStatusOf, TRANSFORM_JOB_STATUSES, type TransformJobStatus } from './status';

/** ListTransformJobs' request, less NextToken. */
export interface ListJobsFilters {
  readonly StatusEquals?: TransformJobStatus;
  /** A part of the name, matched without regard to case. */
  readonly NameContains?: string;
  /** Jobs created strictly after this time. */
  readonly CreationTimeAfter?: Date;
  readonly CreationTimeBefore?: Date;
  readonly LastModifiedTimeAfter?: Date;
  readonly LastModifiedTimeBefore?: Date;
  /** @default 'CreationTime' */
  readonly SortBy?: 'Name' | 'CreationTime' | 'Status';
  /** @default 'Descending' */
  readonly SortOrder?: 'Ascending' | 'Descending';
  /** 1–100. @default 10 (as ListTransformJobs) */
  readonly MaxResults?: number;
}

/** ListTransformJobs' TransformJobSummary, with the execution in place of the SageMaker ARN. */
export interface TransformJobSummary {
  readonly TransformJobName: string;
  readonly TransformJobStatus: TransformJobStatus;
  readonly CreationTime: string;
  readonly TransformEndTime?: string;
  readonly LastModifiedTime: string;
  readonly ExecutionArn: string;
}

export interface ListJobsResult {
  readonly TransformJobSummaries: TransformJobSummary[];
}

/** Executions per ListExecutions page (the API allows up to 1000). */
const PAGE_SIZE = 100;

/**
 * ListExecutions of the state machine, as ListTransformJobs. The status filter becomes ListExecutions'
 * statusFilter (one listing per execution status that makes up the job status); the filters Step
 * Functions lacks (name, times) and the sort are applied here. Step Functions lists the newest
 * execution first, so the default order (CreationTime, Descending) stops reading as soon as it has
 * MaxResults jobs, and CreationTimeAfter stops at the first older execution; other sorts read every
 * matching execution.
 */
export async function listJobs(
  sfn: CommandSender,
  stateMachineArn: string,
  filters: ListJobsFilters = {},
): Promise<ListJobsResult> {
  const max = checkFilters(filters);
  const sortBy = filters.SortBy ?? 'CreationTime';
  const descending = (filters.SortOrder ?? 'Descending') === 'Descending';
  const newestFirst = sortBy === 'CreationTime' && descending;
  const statuses: Array<ExecutionStatus | undefined> = filters.StatusEquals
    ? executionStatusesFor(filters.StatusEquals)
    : [undefined];

  const found: TransformJobSummary[] = [];
  for (const statusFilter of statuses) {
    let taken = 0;
    let nextToken: string | undefined;
    let done = false;
    do {
      let page: ListExecutionsCommandOutput;
      try {
        page = await sfn.send(
          new ListExecutionsCommand({
            stateMachineArn,
            maxResults: PAGE_SIZE,
            ...(statusFilter ? { statusFilter } : {}),
            ...(nextToken ? { nextToken } : {}),
          }),
        );
      } catch (e) {
        throw awsFailure(e, 'listing transform jobs');
      }
      for (const execution of page.executions ?? []) {
        if (
          filters.CreationTimeAfter &&
          execution.startDate &&
          execution.startDate <= filters.CreationTimeAfter
        ) {
          done = true; // every later execution is older still
          break;
        }
        const job = summaryOf(execution);
        if (!matchesFilters(job, filters)) continue;
        found.push(job);
        taken += 1;
        if (newestFirst && taken >= max) {
          done = true;
          break;
        }
      }
      nextToken = page.nextToken;
    } while (nextToken && !done);
  }
  found.sort(summaryOrder(sortBy, descending));
  return { TransformJobSummaries: found.slice(0, max) };
}

function summaryOf(e: ExecutionListItem): TransformJobSummary {
  const created = iso(e.startDate) ?? new Date(0).toISOString();
  return {
    TransformJobName: e.name ?? '',
    TransformJobStatus: jobStatusOf(e.status),
    CreationTime: created,
    ...(e.stopDate ? { TransformEndTime: iso(e.stopDate) } : {}),
    LastModifiedTime: iso(e.stopDate) ?? created,
    ExecutionArn: e.executionArn ?? '',
  };
}

/**
 * ListTransformJobs' filters other than the status, on one summary: NameContains without regard to
 * case, the time filters strict (a job created exactly at CreationTimeAfter is not after it). The
 * API server's local back end filters its jobs with the same function.
 */
export function matchesFilters(
  job: Pick<TransformJobSummary, 'TransformJobName' | 'CreationTime' | 'LastModifiedTime'>,
  f: ListJobsFilters,
): boolean {
  if (f.NameContains && !job.TransformJobName.toLowerCase().includes(f.NameContains.toLowerCase()))
    return false;
  const created = Date.parse(job.CreationTime);
  const modified = Date.parse(job.LastModifiedTime);
  if (f.CreationTimeAfter && !(created > f.CreationTimeAfter.getTime())) return false;
  if (f.CreationTimeBefore && !(created < f.CreationTimeBefore.getTime())) return false;
  if (f.LastModifiedTimeAfter && !(modified > f.LastModifiedTimeAfter.getTime())) return false;
  if (f.LastModifiedTimeBefore && !(modified < f.LastModifiedTimeBefore.getTime())) return false;
  return true;
}

/** ListTransformJobs' order (SortBy, SortOrder), with ties broken so that pages never overlap. */
export function summaryOrder(
  sortBy: NonNullable<ListJobsFilters['SortBy']>,
  descending: boolean,
): (a: SortableSummary, b: SortableSummary) => number {
  const byKey = (a: SortableSummary, b: SortableSummary): number => {
    if (sortBy === 'Name') return compare(a.TransformJobName, b.TransformJobName);
    if (sortBy === 'Status')
      return (
        TRANSFORM_JOB_STATUSES.indexOf(a.TransformJobStatus) -
        TRANSFORM_JOB_STATUSES.indexOf(b.TransformJobStatus)
      );
    return compare(a.CreationTime, b.CreationTime);
  };
  // Ties (same status, same second) fall back to the newest first, then the name, so the order is stable.
  return (a, b) =>
    (descending ? -byKey(a, b) : byKey(a, b)) ||
    -compare(a.CreationTime, b.CreationTime) ||
    compare(a.TransformJobName, b.TransformJobName);
}

type SortableSummary = Pick<TransformJobSummary, 'TransformJobName' | 'TransformJobStatus' | 'CreationTime'>;

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The filters' own rules (MaxResults range, status, dates); returns MaxResults. */
export function checkFilters(f: ListJobsFilters): number {
  const max = f.MaxResults ?? LIST_MAX_RESULTS.default;
  const problems: string[] = [];
  if (!Number.isInteger(max) || max < LIST_MAX_RESULTS.min || max > LIST_MAX_RESULTS.max)
    problems.push(
      `MaxResults must be a whole number from ${LIST_MAX_RESULTS.min} to ${LIST_MAX_RESULTS.max}, got ${max}`,
    );
  if (f.StatusEquals && !TRANSFORM_JOB_STATUSES.includes(f.StatusEquals))
    problems.push(`StatusEquals must be one of ${TRANSFORM_JOB_STATUSES.join(', ')}, got ${f.StatusEquals}`);
  for (const key of [
    'CreationTimeAfter',
    'CreationTimeBefore',
    'LastModifiedTimeAfter',
    'LastModifiedTimeBefore',
  ] as const) {
    const t = f[key];
    if (t !== undefined && !(t instanceof Date && !Number.isNaN(t.getTime())))
      problems.push(`${key} must be a valid date`);
  }
  if (problems.length > 0) throw new BatchTransformError('InvalidArgument', problems.join('; '));
  return max;
}
