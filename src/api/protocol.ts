import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Problem } from '../job/problems';
import { formatProblems } from '../job/problems';

/**
 * SageMaker's wire protocol, AWS JSON 1.1 (botocore's service model: `"protocol": "json"`,
 * `"jsonVersion": "1.1"`, `"targetPrefix": "SageMaker"`; docs/API.md cites it): every operation is
 * `POST /` with `X-Amz-Target: SageMaker.<Operation>` and a JSON body; an error is HTTP 400 with
 * `{"__type": "<Code>", "message": "<text>"}`, which botocore turns into a ClientError whose
 * `Error.Code` is `<Code>`.
 */

export const CONTENT_TYPE = 'application/x-amz-json-1.1';
export const TARGET_PREFIX = 'SageMaker.';

/** A request body larger than this is refused (SageMaker's largest request, CreateModel, stays far below). */
export const MAX_REQUEST_BYTES = 1024 * 1024;

/** The error codes this server answers with, all of them SageMaker's own. */
export type ApiErrorCode =
  | 'ValidationException'
  | 'ResourceInUse'
  | 'ResourceNotFound'
  | 'ResourceLimitExceeded'
  | 'UnknownOperationException'
  | 'SerializationException'
  | 'InternalFailure';

/** An error the client should see as SageMaker's: its code, its message, HTTP 400 unless said. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly status = 400,
    /** Extra members of the error body (our extension: `Problems` with field paths). */
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}

/** ValidationException listing every problem, each with its field path (also as `Problems` in the body). */
export function validationError(problems: readonly Problem[], subject?: string): ApiError {
  return new ApiError('ValidationException', formatProblems(problems, subject), 400, {
    Problems: problems.map((p) => ({ Path: p.path, Message: p.message })),
  });
}

/** The operation named by `X-Amz-Target`, or an ApiError saying what is wrong with the header. */
export function operationOf(req: IncomingMessage): string {
  const target = req.headers['x-amz-target'];
  if (
    typeof target !== 'string' ||
    !target.startsWith(TARGET_PREFIX) ||
    target.length === TARGET_PREFIX.length
  )
    throw new ApiError(
      'UnknownOperationException',
      `expected the header X-Amz-Target: ${TARGET_PREFIX}<Operation>, got ${target === undefined ? 'none' : JSON.stringify(target)}`,
    );
  return target.slice(TARGET_PREFIX.length);
}

/** The JSON object in the request body (an empty body is `{}`, as botocore sends for no parameters). */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_REQUEST_BYTES)
      throw new ApiError(
        'SerializationException',
        `the request body is larger than ${MAX_REQUEST_BYTES} bytes`,
      );
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new ApiError('SerializationException', `the request body is not JSON: ${(e as Error).message}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new ApiError('SerializationException', 'the request body must be a JSON object');
  return body as Record<string, unknown>;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': CONTENT_TYPE,
    'Content-Length': Buffer.byteLength(text),
    // botocore reports it as ResponseMetadata.RequestId.
    'x-amzn-RequestId': randomUUID(),
  });
  res.end(text);
}

export function sendError(res: ServerResponse, e: ApiError): void {
  sendJson(res, e.status, { __type: e.code, message: e.message, ...e.details });
}

/**
 * A timestamp on the wire: epoch seconds (fractions allowed), as botocore's JSON protocol writes and
 * reads them by default.
 */
export function epochSeconds(iso: string | Date): number {
  const ms = typeof iso === 'string' ? Date.parse(iso) : iso.getTime();
  return ms / 1000;
}

/** A timestamp from a request: epoch seconds (what boto3 and the AWS CLI send) or an ISO 8601 string. */
export function parseTimestamp(value: unknown, field: string, problems: Problem[]): Date | undefined {
  if (value === undefined || value === null) return undefined;
  const date =
    typeof value === 'number'
      ? new Date(value * 1000)
      : typeof value === 'string'
        ? new Date(/^\d+(\.\d+)?$/.test(value) ? Number(value) * 1000 : value)
        : undefined;
  if (!date || Number.isNaN(date.getTime())) {
    problems.push({
      path: field,
      message: `must be a timestamp (epoch seconds), got ${JSON.stringify(value)}`,
    });
    return undefined;
  }
  return date;
}
