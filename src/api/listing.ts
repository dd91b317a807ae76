import { LIST_MAX_RESULTS } from '../client/defaults';
import type { ListJobsFilters } from '../client/list';
import { TRANSFORM_JOB_STATUSES, type TransformJobStatus } from '../client/status';
import type { Problem } from '../job/problems';
import { ApiError, parseTimestamp, validationError } from './protocol';

/**
 * The List* operations' parameters and pages. ListTransformJobs: every filter, SortBy `Name |
 * CreationTime | Status` (default CreationTime), SortOrder (default Descending), MaxResults 1–100
 * (default 10) and NextToken; ListModels the same less the status and LastModifiedTime filters, with
 * SortBy `Name | CreationTime` (botocore's service model, docs/API.md).
 */

/** NameContains' pattern and length in both list operations. */
const NAME_CONTAINS = /^[a-zA-Z0-9-]+$/;
const NAME_CONTAINS_MAX = 63;
/** NextToken's length limit (8192). */
const NEXT_TOKEN_MAX = 8192;

export interface ListQuery extends ListJobsFilters {
  readonly NextToken?: string;
}

/** ListTransformJobs' request, checked: every problem at once, each with its field. */
export function parseListTransformJobs(body: Record<string, unknown>): ListQuery {
  return parseListQuery(body, {
    sortBy: ['Name', 'CreationTime', 'Status'],
    fields: [
      'CreationTimeAfter',
      'CreationTimeBefore',
      'LastModifiedTimeAfter',
      'LastModifiedTimeBefore',
      'NameContains',
      'StatusEquals',
      'SortBy',
      'SortOrder',
      'NextToken',
      'MaxResults',
    ],
  });
}

/** ListModels' request, checked. */
export function parseListModels(body: Record<string, unknown>): ListQuery {
  return parseListQuery(body, {
    sortBy: ['Name', 'CreationTime'],
    fields: [
      'CreationTimeAfter',
      'CreationTimeBefore',
      'NameContains',
      'SortBy',
      'SortOrder',
      'NextToken',
      'MaxResults',
    ],
  });
}

function parseListQuery(
  body: Record<string, unknown>,
  shape: { sortBy: readonly string[]; fields: readonly string[] },
): ListQuery {
  const problems: Problem[] = [];
  for (const key of Object.keys(body))
    if (!shape.fields.includes(key))
      problems.push({
        path: key,
        message: `is not a parameter of this operation (${shape.fields.join(', ')})`,
      });
  const q: { -readonly [K in keyof ListQuery]: ListQuery[K] } = {};
  for (const key of [
    'CreationTimeAfter',
    'CreationTimeBefore',
    'LastModifiedTimeAfter',
    'LastModifiedTimeBefore',
  ] as const) {
    const t = parseTimestamp(body[key], key, problems);
    if (t) q[key] = t;
  }
  if (body.NameContains !== undefined) {
    const v = body.NameContains;
    if (typeof v !== 'string' || !NAME_CONTAINS.test(v) || v.length > NAME_CONTAINS_MAX)
      problems.push({
        path: 'NameContains',
        message: `must be 1–${NAME_CONTAINS_MAX} letters, digits and hyphens, got ${JSON.stringify(v)}`,
      });
    else q.NameContains = v;
  }
  if (body.StatusEquals !== undefined) {
    const v = body.StatusEquals;
    if (!TRANSFORM_JOB_STATUSES.includes(v as TransformJobStatus))
      problems.push({
        path: 'StatusEquals',
        message: `must be one of ${TRANSFORM_JOB_STATUSES.join(', ')}, got ${JSON.stringify(v)}`,
      });
    else q.StatusEquals = v as TransformJobStatus;
  }
  if (body.SortBy !== undefined) {
    if (!shape.sortBy.includes(body.SortBy as string))
      problems.push({
        path: 'SortBy',
        message: `must be one of ${shape.sortBy.join(', ')}, got ${JSON.stringify(body.SortBy)}`,
      });
    else q.SortBy = body.SortBy as ListQuery['SortBy'];
  }
  if (body.SortOrder !== undefined) {
    if (body.SortOrder !== 'Ascending' && body.SortOrder !== 'Descending')
      problems.push({
        path: 'SortOrder',
        message: `must be Ascending or Descending, got ${JSON.stringify(body.SortOrder)}`,
      });
    else q.SortOrder = body.SortOrder;
  }
  if (body.MaxResults !== undefined) {
    const v = body.MaxResults;
    if (!Number.isInteger(v) || (v as number) < LIST_MAX_RESULTS.min || (v as number) > LIST_MAX_RESULTS.max)
      problems.push({
        path: 'MaxResults',
        message: `must be a whole number from ${LIST_MAX_RESULTS.min} to ${LIST_MAX_RESULTS.max}, got ${JSON.stringify(v)}`,
      });
    else q.MaxResults = v as number;
  }
  if (body.NextToken !== undefined) {
    if (typeof body.NextToken !== 'string' || body.NextToken.length > NEXT_TOKEN_MAX)
      problems.push({ path: 'NextToken', message: 'must be the NextToken of an earlier answer' });
    else q.NextToken = body.NextToken;
  }
  if (problems.length > 0) throw validationError(problems);
  return q;
}

/**
 * One page of a sorted list: MaxResults items from where NextToken says, and the token of the next
 * page when there is one. The token is the position in the sorted, filtered list; it is opaque to
 * clients (botocore's paginator only hands it back).
 */
export function pageOf<T>(
  items: readonly T[],
  maxResults: number,
  nextToken: string | undefined,
): { items: T[]; nextToken?: string } {
  const start = nextToken === undefined ? 0 : decodeToken(nextToken);
  const page = items.slice(start, start + maxResults);
  const next = start + page.length;
  return next < items.length ? { items: page, nextToken: encodeToken(next) } : { items: page };
}

function encodeToken(offset: number): string {
  return Buffer.from(JSON.stringify({ offset })).toString('base64url');
}

function decodeToken(token: string): number {
  try {
    const { offset } = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { offset?: unknown };
    if (Number.isInteger(offset) && (offset as number) >= 0) return offset as number;
  } catch {
    // falls through to the error below
  }
  throw new ApiError('ValidationException', 'NextToken is not a token this server gave out');
}
