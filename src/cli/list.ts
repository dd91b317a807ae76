import { type Command, InvalidArgumentError, Option } from 'commander';
import { LIST_MAX_RESULTS } from '../client/defaults';
import type { ListJobsFilters, TransformJobSummary } from '../client/list';
import { TRANSFORM_JOB_STATUSES, type TransformJobStatus } from '../client/status';
import { addDeploymentOptions, DEPLOYMENT_HELP, type DeploymentOptions, withTransformer } from './deployed';
import { EXIT, printJson } from './io';

interface ListCliOptions extends DeploymentOptions {
  statusEquals?: TransformJobStatus;
  nameContains?: string;
  creationTimeAfter?: Date;
  creationTimeBefore?: Date;
  lastModifiedTimeAfter?: Date;
  lastModifiedTimeBefore?: Date;
  sortBy?: ListJobsFilters['SortBy'];
  sortOrder?: ListJobsFilters['SortOrder'];
  maxResults?: number;
  json?: boolean;
}

export function registerList(program: Command, setExit: (code: number) => void): void {
  addDeploymentOptions(
    program
      .command('list')
      .description(
        "List the deployed stack's transform jobs, with ListTransformJobs' filters, sort and limit.",
      ),
  )
    .addOption(
      new Option('--status-equals <status>', 'only jobs in this status').choices(TRANSFORM_JOB_STATUSES),
    )
    .option('--name-contains <text>', 'only jobs whose name contains this text (any case)')
    .option('--creation-time-after <time>', 'only jobs created after this time (ISO 8601)', parseTime)
    .option('--creation-time-before <time>', 'only jobs created before this time', parseTime)
    .option(
      '--last-modified-time-after <time>',
      'only jobs that changed (started or ended) after this time',
      parseTime,
    )
    .option('--last-modified-time-before <time>', 'only jobs that last changed before this time', parseTime)
    .addOption(
      new Option('--sort-by <field>', 'sort on this field')
        .choices(['Name', 'CreationTime', 'Status'])
        .default('CreationTime'),
    )
    .addOption(
      new Option('--sort-order <order>', 'sort order')
        .choices(['Ascending', 'Descending'])
        .default('Descending'),
    )
    .option(
      '--max-results <n>',
      `at most this many jobs (${LIST_MAX_RESULTS.min}–${LIST_MAX_RESULTS.max})`,
      parseMaxResults,
      LIST_MAX_RESULTS.default,
    )
    .option('--json', 'print {"TransformJobSummaries": [...]} as JSON')
    .addHelpText(
      'after',
      `\nExit codes: 0 listed (even when nothing matches), 2 bad filter or no deployment found.\n${DEPLOYMENT_HELP}\n\nExample:\n  batch-transform list --status-equals Failed --creation-time-after 2030-01-01 --max-results 20`,
    )
    .action(async (opts: ListCliOptions) => {
      const filters: ListJobsFilters = {
        ...(opts.statusEquals ? { StatusEquals: opts.statusEquals } : {}),
        ...(opts.nameContains ? { NameContains: opts.nameContains } : {}),
        ...(opts.creationTimeAfter ? { CreationTimeAfter: opts.creationTimeAfter } : {}),
        ...(opts.creationTimeBefore ? { CreationTimeBefore: opts.creationTimeBefore } : {}),
        ...(opts.lastModifiedTimeAfter ? { LastModifiedTimeAfter: opts.lastModifiedTimeAfter } : {}),
        ...(opts.lastModifiedTimeBefore ? { LastModifiedTimeBefore: opts.lastModifiedTimeBefore } : {}),
        ...(opts.sortBy ? { SortBy: opts.sortBy } : {}),
        ...(opts.sortOrder ? { SortOrder: opts.sortOrder } : {}),
        ...(opts.maxResults !== undefined ? { MaxResults: opts.maxResults } : {}),
      };
      const result = await withTransformer(opts, (t) => t.list(filters));
      if (opts.json) printJson(result);
      else process.stdout.write(formatTable(result.TransformJobSummaries));
      setExit(EXIT.ok);
    });
}

function parseTime(value: string): Date {
  const t = new Date(value);
  if (value.trim() === '' || Number.isNaN(t.getTime()))
    throw new InvalidArgumentError('expected a time such as 2030-01-31 or 2030-01-31T10:00:00Z.');
  return t;
}

function parseMaxResults(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < LIST_MAX_RESULTS.min || n > LIST_MAX_RESULTS.max)
    throw new InvalidArgumentError(
      `expected a whole number from ${LIST_MAX_RESULTS.min} to ${LIST_MAX_RESULTS.max}.`,
    );
  return n;
}

function formatTable(jobs: readonly TransformJobSummary[]): string {
  if (jobs.length === 0) return 'No transform jobs match.\n';
  const rows = [
    ['NAME', 'STATUS', 'CREATED', 'ENDED'],
    ...jobs.map((j) => [j.TransformJobName, j.TransformJobStatus, j.CreationTime, j.TransformEndTime ?? '-']),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((cell, i) => cell.padEnd(widths[i]!))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}
