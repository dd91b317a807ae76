import { describe, expect, it } from 'vitest';
import { BatchTransformError } from '../../src/client/aws';
import { listJobs } from '../../src/client/list';
import { executionArn, FakeAwsClient, STATE_MACHINE_ARN } from './fake-aws';

/** A ListExecutions item started `day` days into 2030 (newer for larger days). */
function item(name: string, day: number, status = 'SUCCEEDED') {
  const startDate = new Date(Date.UTC(2030, 0, day));
  return {
    executionArn: executionArn(name),
    stateMachineArn: STATE_MACHINE_ARN,
    name,
    status,
    startDate,
    ...(status === 'RUNNING' ? {} : { stopDate: new Date(startDate.getTime() + 3_600_000) }),
  };
}

/** Step Functions' pages, newest first, chained by nextToken `p1`, `p2`, … */
function pagedSfn(pages: ReturnType<typeof item>[][]) {
  return new FakeAwsClient('sfn', {
    ListExecutions: (input) => {
      const index = input.nextToken ? Number(String(input.nextToken).slice(1)) : 0;
      return {
        executions: pages[index]!,
        ...(index + 1 < pages.length ? { nextToken: `p${index + 1}` } : {}),
      };
    },
  });
}

const names = (r: { TransformJobSummaries: Array<{ TransformJobName: string }> }) =>
  r.TransformJobSummaries.map((j) => j.TransformJobName);

describe('listJobs', () => {
  it('follows nextToken and stops reading once it has MaxResults of the newest jobs', async () => {
    const sfn = pagedSfn([[item('j9', 9), item('j8', 8)], [item('j7', 7), item('j6', 6)], [item('j5', 5)]]);
    const r = await listJobs(sfn, STATE_MACHINE_ARN, { MaxResults: 3 });
    expect(names(r)).toEqual(['j9', 'j8', 'j7']);
    expect(sfn.inputsOf('ListExecutions')).toEqual([
      { stateMachineArn: STATE_MACHINE_ARN, maxResults: 100 },
      { stateMachineArn: STATE_MACHINE_ARN, maxResults: 100, nextToken: 'p1' },
    ]);
  });

  it('returns 10 jobs when MaxResults is not given, as ListTransformJobs', async () => {
    const sfn = pagedSfn([Array.from({ length: 12 }, (_, i) => item(`j${20 - i}`, 20 - i))]);
    expect((await listJobs(sfn, STATE_MACHINE_ARN)).TransformJobSummaries).toHaveLength(10);
  });

  it('reads every page when the sort is not newest first, then sorts and cuts', async () => {
    const sfn = pagedSfn([[item('delta', 9), item('alpha', 8)], [item('charlie', 7)], [item('bravo', 6)]]);
    const r = await listJobs(sfn, STATE_MACHINE_ARN, {
      SortBy: 'Name',
      SortOrder: 'Ascending',
      MaxResults: 2,
    });
    expect(names(r)).toEqual(['alpha', 'bravo']);
    expect(sfn.inputsOf('ListExecutions')).toHaveLength(3);
  });

  it('sorts oldest first with SortOrder Ascending', async () => {
    const sfn = pagedSfn([[item('new', 3), item('mid', 2), item('old', 1)]]);
    const r = await listJobs(sfn, STATE_MACHINE_ARN, { SortOrder: 'Ascending' });
    expect(names(r)).toEqual(['old', 'mid', 'new']);
  });

  it('sorts by status, newest first within a status', async () => {
    const sfn = pagedSfn([
      [
        item('run', 5, 'RUNNING'),
        item('ok-new', 4),
        item('bad', 3, 'FAILED'),
        item('ok-old', 2),
        item('stop', 1, 'ABORTED'),
      ],
    ]);
    const r = await listJobs(sfn, STATE_MACHINE_ARN, { SortBy: 'Status', SortOrder: 'Ascending' });
    expect(r.TransformJobSummaries.map((j) => [j.TransformJobName, j.TransformJobStatus])).toEqual([
      ['ok-new', 'Completed'],
      ['ok-old', 'Completed'],
      ['bad', 'Failed'],
      ['run', 'InProgress'],
      ['stop', 'Stopped'],
    ]);
  });

  it('stops reading at the first execution created at or before CreationTimeAfter', async () => {
    const sfn = pagedSfn([[item('new', 10), item('edge', 5), item('old', 4)], [item('older', 3)]]);
    const r = await listJobs(sfn, STATE_MACHINE_ARN, { CreationTimeAfter: new Date(Date.UTC(2030, 0, 5)) });
    expect(names(r)).toEqual(['new']);
    expect(sfn.inputsOf('ListExecutions')).toHaveLength(1);
  });

  it('applies NameContains (any case), CreationTimeBefore and the LastModifiedTime filters itself', async () => {
    const sfn = pagedSfn([
      [
        item('Nightly-5', 5, 'RUNNING'),
        item('nightly-4', 4),
        item('adhoc-3', 3),
        item('nightly-2', 2),
        item('nightly-1', 1),
      ],
    ]);
    const day = (d: number, h = 0) => new Date(Date.UTC(2030, 0, d, h));
    expect(
      names(await listJobs(sfn, STATE_MACHINE_ARN, { NameContains: 'NIGHTLY', CreationTimeBefore: day(4) })),
    ).toEqual(['nightly-2', 'nightly-1']);
    // LastModifiedTime is the end, or the start of a job still running.
    expect(
      names(
        await listJobs(sfn, STATE_MACHINE_ARN, {
          LastModifiedTimeAfter: day(2, 2),
          LastModifiedTimeBefore: day(5, 0),
        }),
      ),
    ).toEqual(['nightly-4', 'adhoc-3']);
    expect(names(await listJobs(sfn, STATE_MACHINE_ARN, { LastModifiedTimeAfter: day(4, 2) }))).toEqual([
      'Nightly-5',
    ]);
  });

  it('summarizes each execution as a TransformJobSummary', async () => {
    const sfn = pagedSfn([[item('done', 2), item('running', 1, 'RUNNING')]]);
    expect((await listJobs(sfn, STATE_MACHINE_ARN)).TransformJobSummaries).toEqual([
      {
        TransformJobName: 'done',
        TransformJobStatus: 'Completed',
        CreationTime: '2030-01-02T00:00:00.000Z',
        TransformEndTime: '2030-01-02T01:00:00.000Z',
        LastModifiedTime: '2030-01-02T01:00:00.000Z',
        ExecutionArn: executionArn('done'),
      },
      {
        TransformJobName: 'running',
        TransformJobStatus: 'InProgress',
        CreationTime: '2030-01-01T00:00:00.000Z',
        LastModifiedTime: '2030-01-01T00:00:00.000Z',
        ExecutionArn: executionArn('running'),
      },
    ]);
  });

  it.each([
    ['InProgress', ['RUNNING', 'PENDING_REDRIVE']],
    ['Completed', ['SUCCEEDED']],
    ['Failed', ['FAILED', 'TIMED_OUT']],
    ['Stopped', ['ABORTED']],
    ['Stopping', []],
  ] as const)('lists StatusEquals %s as the executions with statusFilter %j', async (status, filters) => {
    const sfn = pagedSfn([[]]);
    await listJobs(sfn, STATE_MACHINE_ARN, { StatusEquals: status });
    expect(sfn.inputsOf('ListExecutions').map((i) => i.statusFilter)).toEqual(filters);
  });

  it.each([0, 101, 2.5])('rejects MaxResults %s without calling Step Functions', async (max) => {
    const sfn = pagedSfn([[]]);
    const error = await listJobs(sfn, STATE_MACHINE_ARN, { MaxResults: max }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BatchTransformError);
    expect(error).toMatchObject({
      kind: 'InvalidArgument',
      message: `MaxResults must be a whole number from 1 to 100, got ${max}`,
    });
    expect(sfn.calls).toEqual([]);
  });

  it('says what AWS refused, without a stack trace', async () => {
    const sfn = new FakeAwsClient('sfn', {
      ListExecutions: {
        $error: {
          name: 'AccessDeniedException',
          message: 'not authorized to perform: states:ListExecutions',
        },
      },
    });
    await expect(listJobs(sfn, STATE_MACHINE_ARN)).rejects.toThrow(
      'listing transform jobs: AWS refused the request (AccessDeniedException: not authorized to perform: states:ListExecutions)',
    );
  });
});
